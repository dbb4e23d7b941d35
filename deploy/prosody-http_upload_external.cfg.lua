-- Prosody (0.11, 0.12, 13) + mod_http_upload_external → upslot, with
-- HMAC-signed PUT URLs (?v= or ?v2=).
--
-- mod_http_upload_external is a community module: on Debian/Ubuntu
-- `apt install prosody-modules`, otherwise copy it from
-- https://modules.prosody.im/mod_http_upload_external.html into a directory
-- listed in plugin_paths.
--
-- Put this file in /etc/prosody/conf.d/ (Debian's prosody.cfg.lua ends with
-- Include "conf.d/*.cfg.lua"), or paste it after your VirtualHost, and
-- replace example.org. Clients find the component through disco#items on their
-- domain; mod_disco lists components that are subdomains of a VirtualHost
-- automatically, otherwise add it with disco_items.

-- Reads the first line of a file. Prosody's config is Lua, so the secret can
-- stay out of this file: keep it in a file readable by Prosody only
-- (root:prosody 0640) holding the same string as upslot's
-- [upload] secret_file.
local function read_secret(path)
	local file = assert(io.open(path, "r"), "cannot read " .. path)
	local secret = file:read("*l")
	file:close()
	return secret
end

Component "upload.example.org" "http_upload_external"
	-- Where clients PUT and GET: upslot's public URL including its
	-- [server] base_path. Must end with "/"; the module appends
	-- "<uuid>/<file name>", percent-encoded (lower-case hex).
	http_upload_external_base_url = "https://upload.example.org/"

	-- The shared secret (see read_secret above). A literal string works
	-- too: http_upload_external_secret = "…"
	http_upload_external_secret = read_secret("/etc/prosody/upslot.secret")

	-- Token protocol. Pick one; upslot accepts both (see [upload] protocols).
	--
	-- "v2": the MAC covers path, size AND the content type the client
	-- declared in its slot request (or application/octet-stream if it
	-- declared none). upslot then serves exactly the signed type, and a PUT
	-- whose Content-Type differs from the declared one is refused (403).
	-- Recommended for new setups.
	http_upload_external_protocol = "v2"
	--
	-- "v1" (the module's default): the MAC covers path and size only, so
	-- the type the file is served with is whatever Content-Type the PUT
	-- carried. Use it if you must support clients that declare one type and
	-- upload with another. Any value other than "v1" means v2.
	-- http_upload_external_protocol = "v1"

	-- Largest file a slot is handed out for, in bytes. Keep it equal to
	-- upslot's [upload] max_size (100 MiB here) so that clients are told the
	-- real limit in disco instead of getting a 413 after the slot.
	http_upload_external_file_size_limit = 100 * 1024 * 1024

	-- Optional: JIDs or hosts besides local users that may request slots.
	-- http_upload_external_access = { "example.net" }

-- Deletion: this module never deletes anything. upslot removes files on its
-- own schedule, [retention] keep after upload.
