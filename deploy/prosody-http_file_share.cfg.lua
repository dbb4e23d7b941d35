-- Prosody 0.12 / 13 core mod_http_file_share in external mode → upslot.
--
-- With http_file_share_base_url set, Prosody serves no HTTP for uploads and
-- stores nothing: it hands each client a slot URL plus an
-- "Authorization: Bearer <JWT>" header (HS256, signed with
-- http_file_share_secret) that the client sends with its PUT. upslot checks
-- the JWT and stores the file.
--
-- Put this file in /etc/prosody/conf.d/ (Debian's prosody.cfg.lua ends with
-- Include "conf.d/*.cfg.lua"), or paste it after your VirtualHost, and
-- replace example.org.

-- Reads the first line of a file, so the secret stays out of this file.
-- Keep it readable by Prosody only (root:prosody 0640), holding the same
-- string as upslot's [upload] secret_file.
local function read_secret(path)
	local file = assert(io.open(path, "r"), "cannot read " .. path)
	local secret = file:read("*l")
	file:close()
	return secret
end

Component "upload.example.org" "http_file_share"
	-- upslot's public URL including its [server] base_path, ending in "/".
	-- Setting it is what switches the module to external mode. Slot URLs
	-- are "<base>/<24-char slot id>/<file name>" with upper-case
	-- percent-escapes.
	http_file_share_base_url = "https://upload.example.org/"

	-- The JWT signing key. Required: without it Prosody invents a random
	-- one at every start and upslot would refuse every upload.
	http_file_share_secret = read_secret("/etc/prosody/upslot.secret")

	-- Largest file, in bytes; keep it equal to upslot's [upload] max_size.
	-- It is also signed into the JWT (filesize), which upslot enforces.
	http_file_share_size_limit = 100 * 1024 * 1024

	-- Signed into the JWT as "expires" (upload time + this many seconds):
	-- upslot deletes the file at that time or after its own
	-- [retention] keep, whichever comes first. Prosody itself deletes
	-- nothing in external mode. -1 leaves the claim out.
	http_file_share_expires_after = 30 * 24 * 3600

	-- Per-user upload volume per day, in bytes (default: 10 × size limit).
	-- Prosody enforces it when handing out slots.
	-- http_file_share_daily_quota = 1024 * 1024 * 1024

	-- Optional: only hand out slots for these content types.
	-- http_file_share_allowed_file_types = { "image/*", "video/*", "audio/*", "text/plain" }

-- The JWT is valid for 300 s (Prosody 0.12) or 600 s (13) after the slot
-- is issued: an upload must start within that time; it may take longer to
-- finish. Keep the clocks of both hosts in sync (NTP).
--
-- To make upslot answer a PUT without a token with 401 +
-- WWW-Authenticate: Bearer, accept only JWTs: [upload] protocols = ["jwt"].
