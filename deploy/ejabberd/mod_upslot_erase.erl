%%% mod_upslot_erase: when an account is deleted, ask upslot to delete every
%%% file it uploaded, with a signed DELETE on upslot's admin listener:
%%%
%%%   DELETE <url><percent-encoded user@host>?ts=<unix time>&sig=<hex>
%%%
%%% sig = lower-case hex HMAC-SHA256 of "erase\0" ++ jid ++ "\0" ++ ts under the
%%% secret shared with upslot (upslot's [upload] secret). Runs for every
%%% deletion inside ejabberd: ejabberdctl unregister, in-band removal
%%% (XEP-0077), delete_old_users, the web admin and the HTTP API all call
%%% ejabberd_auth:remove_user/2, which runs the remove_user hook.
-module(mod_upslot_erase).
-behaviour(gen_mod).

-export([start/2, stop/1, reload/3, depends/2, mod_opt_type/1,
         mod_options/1, mod_doc/0]).
-export([remove_user/2]).

-include("logger.hrl").

-define(ATTEMPTS, 8).            % in all, about 3 minutes with the backoff
-define(MAX_DELAY_S, 60).

start(Host, _Opts) ->
    {ok, _} = application:ensure_all_started(inets),
    ejabberd_hooks:add(remove_user, Host, ?MODULE, remove_user, 50).

stop(Host) ->
    ejabberd_hooks:delete(remove_user, Host, ?MODULE, remove_user, 50).

reload(_Host, _NewOpts, _OldOpts) -> ok.

depends(_Host, _Opts) -> [].

%% url: upslot's admin listener + "/owners/"; secret: unset means the
%% external_secret of mod_http_upload on the same host.
mod_opt_type(url) -> econf:url();
mod_opt_type(secret) -> econf:binary().

mod_options(_Host) ->
    [{url, <<"http://127.0.0.1:5051/owners/">>},
     {secret, undefined}].

mod_doc() ->
    #{desc => [<<"Asks upslot to erase the uploads of deleted accounts.">>]}.

%% The hook runs in the process deleting the account: answer at once and
%% let a separate process talk to upslot (and retry while it restarts).
remove_user(User, Server) ->
    Jid = <<User/binary, $@, Server/binary>>,
    Url = gen_mod:get_module_opt(Server, ?MODULE, url),
    case secret(Server) of
        Secret when is_binary(Secret), Secret /= <<>> ->
            spawn(fun() -> erase(Jid, Url, Secret, 1) end);
        _ ->
            ?ERROR_MSG("No secret to ask upslot to erase the uploads of ~ts; "
                       "set mod_upslot_erase's secret and run "
                       "`upslot erase --jid ~ts` on the upslot host", [Jid, Jid])
    end,
    ok.

secret(Host) ->
    case gen_mod:get_module_opt(Host, ?MODULE, secret) of
        undefined ->
            try gen_mod:get_module_opt(Host, mod_http_upload, external_secret)
            catch _:_ -> undefined
            end;
        Secret -> Secret
    end.

erase(Jid, Url, Secret, Attempt) ->
    Ts = integer_to_binary(erlang:system_time(second)),
    Mac = crypto:mac(hmac, sha256, Secret, [<<"erase">>, 0, Jid, 0, Ts]),
    Sig = string:lowercase(binary:encode_hex(Mac)),
    Target = <<Url/binary, (percent_encode(Jid))/binary,
               "?ts=", Ts/binary, "&sig=", Sig/binary>>,
    Result = httpc:request(delete, {binary_to_list(Target), []},
                           [{timeout, 30000}, {connect_timeout, 10000}],
                           [{body_format, binary}]),
    case Result of
        {ok, {{_, Code, _}, _, Body}} when Code >= 200, Code < 300 ->
            ?INFO_MSG("upslot erased the uploads of deleted account ~ts: ~ts",
                      [Jid, string:trim(Body)]);
        {ok, {{_, Code, _}, _, Body}} when Code < 500, Code /= 408, Code /= 429 ->
            %% 403: another secret, or clocks more than 300 s apart.
            ?ERROR_MSG("upslot refused to erase the uploads of ~ts: HTTP ~B ~ts; "
                       "run `upslot erase --jid ~ts` on the upslot host",
                       [Jid, Code, string:trim(Body), Jid]);
        _ when Attempt < ?ATTEMPTS ->
            Delay = min(2 bsl (Attempt - 1), ?MAX_DELAY_S),
            ?WARNING_MSG("Could not ask upslot to erase the uploads of ~ts "
                         "(attempt ~B of ~B: ~0p); retrying in ~B s",
                         [Jid, Attempt, ?ATTEMPTS, reason(Result), Delay]),
            timer:sleep(Delay * 1000),
            erase(Jid, Url, Secret, Attempt + 1);
        _ ->
            ?ERROR_MSG("Giving up asking upslot to erase the uploads of ~ts "
                       "(~0p); run `upslot erase --jid ~ts` on the upslot host",
                       [Jid, reason(Result), Jid])
    end.

reason({ok, {{_, Code, _}, _, _}}) -> {http, Code};
reason({error, Reason}) -> Reason.

percent_encode(Bin) ->
    << <<(encode_byte(C))/binary>> || <<C>> <= Bin >>.

encode_byte(C) when C >= $a, C =< $z; C >= $A, C =< $Z; C >= $0, C =< $9;
                    C == $-; C == $.; C == $_; C == $~ ->
    <<C>>;
encode_byte(C) ->
    list_to_binary(io_lib:format("%~2.16.0B", [C])).
