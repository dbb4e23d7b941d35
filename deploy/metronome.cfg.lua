-- Metronome IM + its bundled mod_http_upload_external → upslot.
--
-- Metronome signs PUT URLs with ?token= (HMAC-SHA256 over
-- "<dir>/<file name>\0<size>\0<content type>", like Prosody's v2) and, when
-- a delete URL is configured, removes files by sending
-- DELETE <url>?token=HMAC(secret, "<dir>/<file name>\0<delete secret>"),
-- expecting 204. It does so when a user deletes their account, when a user
-- runs the "Delete Single Files" / "Purge All Uploaded Files" ad-hoc
-- commands, and for files older than http_file_expire_after.
--
-- Add this to /etc/metronome/metronome.cfg.lua after your VirtualHost and
-- replace example.org and both secrets. Keep this file readable by
-- Metronome only (root:metronome 0640): it holds the secrets.

Component "upload.example.org" "http_upload_external"
	-- upslot's public URL including its [server] base_path, ending in "/".
	-- Metronome appends "<short random id>/<percent-encoded file name>".
	http_file_external_url = "https://upload.example.org/"

	-- The shared secret: the same string as upslot's [upload] secret_file.
	-- It keys both the upload and the delete MACs.
	http_file_secret = "REPLACE WITH THE CONTENT OF /etc/upslot/secret"

	-- Setting a delete URL turns deletion on. upslot takes DELETE on the
	-- same URLs it serves, so this is the same value as above.
	http_file_external_delete_url = "https://upload.example.org/"

	-- A second secret that goes inside the signed delete message; upslot
	-- needs it as [upload] delete_secret_file (or delete_secret). Without
	-- it upslot refuses every DELETE.
	http_file_delete_secret = "REPLACE WITH THE CONTENT OF /etc/upslot/delete-secret"

	-- Largest file a slot is handed out for, in bytes; keep it equal to
	-- upslot's [upload] max_size.
	http_file_size_limit = 100 * 1024 * 1024

	-- Metronome deletes a user's files older than this many seconds (default
	-- 172800 = 2 days) through upslot, checked whenever that user asks for
	-- a new slot. upslot also deletes on its own after [retention] keep;
	-- set keep >= this value if Metronome should decide, or lower if upslot
	-- should.
	http_file_expire_after = 30 * 24 * 3600

	-- Bare JIDs whose files Metronome never expires (upslot's
	-- [retention] keep still applies).
	-- http_file_no_expire_whitelist = { "admin@example.org" }

-- Matching upslot settings (/etc/upslot/upslot.toml):
--   [upload]
--   secret_file = "/etc/upslot/secret"
--   delete_secret_file = "/etc/upslot/delete-secret"
--   protocols = ["token"]   # or keep the default list
