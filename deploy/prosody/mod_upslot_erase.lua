-- mod_upslot_erase: when an XMPP account is deleted, ask upslot to delete
-- every file that account uploaded. Written for and tested with Prosody 0.12.
--
-- WHAT IT DOES
--
-- mod_http_file_share in external mode signs each upload slot with a JWT
-- whose "sub" is the uploader's bare JID; upslot remembers a keyed
-- pseudonym of it per file. When an account on this host is deleted, this
-- module sends upslot's admin listener
--
--   DELETE <upslot_erase_url><percent-encoded user@host>?ts=<unix time>&sig=<hex>
--
-- where sig is HMAC-SHA256 of "erase\0" .. jid .. "\0" .. ts under the
-- secret Prosody shares with upslot. upslot refuses a bad signature or a ts
-- more than 300 s from its own clock (403; keep both clocks on NTP) and
-- answers 200 {"deleted":N}. Success is logged at "info" with N; a failed
-- attempt (upslot unreachable, 5xx, 408, 429, no answer within
-- upslot_erase_timeout) at "warn", and it is retried with exponential
-- backoff (2, 4, 8 … s, at most 60 s apart) up to upslot_erase_attempts
-- times in all, each attempt signed afresh. Other answers (403: wrong
-- secret or clocks apart; 400/404/405: wrong URL) are logged at "error" and
-- not retried. Giving up, or Prosody
-- stopping with an erasure still pending, is logged at "error" together
-- with the command to run by hand. The signature never appears in the log
-- (not even in net.http's debug lines: the URL is suppressed there).
--
-- WHICH DELETIONS TRIGGER IT (Prosody 0.12.3, from its source)
--
-- core/usermanager.lua's delete_user() fires the global event
-- "user-deleted" in the process that calls it, and this module hooks it.
-- So erasure happens for every deletion made inside the running server:
--
--   * the account owner deleting it in-band (XEP-0077 <remove/>, any
--     client; mod_register / mod_user_account_management);
--   * `prosodyctl shell user delete user@host` (equivalently
--     `prosodyctl shell "user:delete('user@host')"`), which runs in the
--     server through mod_admin_shell (enable "admin_shell" globally);
--   * an admin's XEP-0133 "Delete User" ad-hoc command (mod_admin_adhoc);
--   * any other module calling usermanager.delete_user() in the server.
--
-- It does NOT happen for `prosodyctl deluser user@host` in 0.12: that
-- command deletes the account and purges its data from its own short-lived
-- process (util/prosodyctl.lua -> usermanager.delete_user), which loads only
-- the auth, authz and storage modules, never this one, and runs no network
-- loop; the running server is not told at all (its log stays silent). Use the shell command above
-- instead, or follow `prosodyctl deluser` with
--   upslot erase --jid user@host
-- on the upslot host (signs with upslot's own secret). Do the same for
-- accounts removed outside Prosody (LDAP or other external auth backends,
-- deleted data files) and for erasures this module gave up on.
--
-- CONFIGURATION
--
-- Prosody finds the module through plugin_paths (a global option, set
-- before any VirtualHost): either copy this file into a directory already
-- listed there (Debian's default config lists /usr/local/lib/prosody/modules)
-- or add the directory holding it:
--
--   plugin_paths = { "/usr/local/lib/prosody/modules" }
--
-- then enable it for the hosts whose accounts upload (globally, to cover
-- every VirtualHost; each host handles its own users' deletions):
--
--   modules_enabled = { …, "upslot_erase" }
--   upslot_erase_url = "http://127.0.0.1:5051/owners/"  -- upslot's [server] admin_listen
--
-- Options (per VirtualHost or global):
--
--   upslot_erase_url       admin URL ending in /owners/ (default above). The
--                          admin listener must never be public: keep it on
--                          loopback or a private network.
--   upslot_erase_secret    the shared secret (one of upslot's [upload]
--                          secret values). If unset, http_file_share_secret
--                          is used, looked up on this host (or globally),
--                          then on the Component "upload.<host>".
--   upslot_erase_attempts  attempts in all before giving up (default 8,
--                          about 3 minutes: long enough for upslot to restart).
--   upslot_erase_timeout   seconds to wait for an answer (default 30).
--
-- `prosodyctl check config` then checks that plugin_paths is global; once
-- Prosody runs, `prosodyctl shell module list <host>` lists upslot_erase
-- (a load error is in Prosody's log, and so is a missing secret).

local http = require "net.http";
local hashes = require "util.hashes";
local json = require "util.json";
local urlencode = require "util.http".urlencode;
local url_parse = require "socket.url".parse;

local erase_url = module:get_option_string("upslot_erase_url", "http://127.0.0.1:5051/owners/");
if erase_url:sub(-1) ~= "/" then
	erase_url = erase_url .. "/";
end
local max_attempts = module:get_option_number("upslot_erase_attempts", 8);
local request_timeout = module:get_option_number("upslot_erase_timeout", 30);
local first_retry_delay, max_retry_delay = 2, 60; -- seconds

local parsed_url = url_parse(erase_url);
if not (parsed_url and parsed_url.host and (parsed_url.scheme == "http" or parsed_url.scheme == "https")) then
	module:log_status("error", "upslot_erase_url %q is not an http(s) URL; account deletions will not reach upslot", erase_url);
end

-- Read at every attempt, so that a changed secret applies without a reload.
local function get_secret()
	return module:get_option_string("upslot_erase_secret")
		or module:get_option_string("http_file_share_secret")
		or module:context("upload." .. module.host):get_option_string("http_file_share_secret");
end

if not get_secret() then
	module:log_status("error", "No secret to sign erase requests: set upslot_erase_secret (upslot's [upload] secret)");
end

-- JIDs whose erasure upslot has not confirmed yet: reported if Prosody stops.
local pending = {};

local send_erase; -- defined below; retry() and send_erase() call each other

-- Schedules another attempt after a failure, or gives up loudly.
local function retry(jid, attempt, why)
	if attempt >= max_attempts then
		pending[jid] = nil;
		module:log("error", "Giving up asking upslot to erase the uploads of %s after %d attempts (last: %s); "
			.. "run `upslot erase --jid %s` on the upslot host", jid, attempt, why, jid);
		return;
	end
	local delay = first_retry_delay;
	for _ = 2, attempt do
		delay = math.min(delay * 2, max_retry_delay);
	end
	module:log("warn", "Could not ask upslot to erase the uploads of %s (attempt %d of %d: %s); retrying in %d s",
		jid, attempt, max_attempts, why, delay);
	module:add_timer(delay, function ()
		send_erase(jid, attempt + 1);
	end);
end

-- One signed DELETE; the answer decides between done, retry and error.
function send_erase(jid, attempt)
	local secret = get_secret();
	if not secret then
		pending[jid] = nil;
		module:log("error", "Cannot ask upslot to erase the uploads of %s: no secret configured "
			.. "(upslot_erase_secret); run `upslot erase --jid %s` on the upslot host", jid, jid);
		return;
	end
	local ts = tostring(os.time());
	local sig = hashes.hmac_sha256(secret, "erase\0" .. jid .. "\0" .. ts, true);
	local url = erase_url .. urlencode(jid) .. "?ts=" .. ts .. "&sig=" .. sig;

	local finished, timer, request = false, nil, nil;
	local function on_answer(body, code)
		if finished then return; end -- already timed out and handled
		finished = true;
		if timer then timer:stop(); end
		if code >= 200 and code < 300 then
			pending[jid] = nil;
			local answer = json.decode(body or "");
			local count = type(answer) == "table" and tonumber(answer.deleted);
			if count then
				module:log("info", "upslot erased %d uploaded file(s) of deleted account %s", count, jid);
			else
				module:log("info", "upslot erased the uploads of deleted account %s (HTTP %d)", jid, code);
			end
		elseif code == 0 or code >= 500 or code == 408 or code == 429 then
			-- code 0: no HTTP answer; body is net.http's reason (e.g. "connection refused").
			retry(jid, attempt, code == 0 and tostring(body) or ("HTTP " .. code));
		else
			-- 403: the secret differs from upslot's or the clocks are more than
			-- 300 s apart; 400/404/405: wrong URL (not the admin listener?).
			-- Retrying would not help. upslot's error body is one line, no secrets.
			pending[jid] = nil;
			local reason = tostring(body or ""):match("^[^\r\n]*"):sub(1, 200);
			module:log("error", "upslot refused to erase the uploads of %s: HTTP %d %s "
				.. "(check upslot_erase_url, the shared secret and both clocks); "
				.. "run `upslot erase --jid %s` on the upslot host", jid, code, reason, jid);
		end
	end

	module:log("debug", "Asking upslot to erase the uploads of %s (attempt %d)", jid, attempt);
	pending[jid] = true;
	request = http.request(url, {
		method = "DELETE";
		suppress_url = true; -- net.http would log the URL, signature included
	}, on_answer);

	-- net.http has no overall timeout: cancel a request left unanswered.
	if not finished then
		timer = module:add_timer(request_timeout, function ()
			if finished then return; end
			finished = true;
			if request and request.cancel then
				request:cancel("timeout"); -- calls on_answer, which now ignores it
			end
			retry(jid, attempt, ("no answer within %s s"):format(request_timeout));
		end);
	end
end

-- "user-deleted" is fired on the global event bus with { username, host };
-- every host that loaded this module sees it, so keep to our own host.
module:hook_global("user-deleted", function (event)
	if event.host ~= module.host then return; end
	send_erase(event.username .. "@" .. event.host, 1);
end);

module:hook_global("server-stopping", function ()
	for jid in pairs(pending) do
		module:log("error", "Prosody is stopping before upslot confirmed erasing the uploads of %s; "
			.. "run `upslot erase --jid %s` on the upslot host", jid, jid);
	end
end);
