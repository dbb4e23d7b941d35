//! Layering of config sources: embedded defaults < file < environment.
//!
//! Works on untyped TOML tables so that every layer may set any subset of
//! keys; the merged table is deserialised (and unknown keys refused) once.

use std::collections::BTreeMap;

use toml::{Table, Value};

use super::ConfigError;

/// The prefix of environment variables that override config keys.
pub const ENV_PREFIX: &str = "UPSLOT_";

/// Environment variables with this prefix that are not config keys.
const ENV_NOT_KEYS: &[&str] = &["UPSLOT_CONFIG"];

/// Whether `name` has the shape of a variable Kubernetes (or Docker's
/// legacy links) gives every pod for a Service whose name starts with
/// `upslot`: `UPSLOT_SERVICE_HOST`, `UPSLOT_SERVICE_PORT[_<port name>]`,
/// `UPSLOT_PORT`, `UPSLOT_PORT_5050_TCP[_PROTO|_PORT|_ADDR]`, and the same
/// after `UPSLOT_ADMIN_` and the like. None holds `__`, which every config
/// key does, so none can be a mistyped key of a section.
fn is_service_link(name: &str) -> bool {
    if name.contains("__") {
        return false;
    }
    let words: Vec<&str> = name.split('_').collect();
    let service = words
        .windows(2)
        .any(|pair| pair == ["SERVICE", "HOST"] || pair == ["SERVICE", "PORT"]);
    let port = match words.iter().rposition(|word| *word == "PORT") {
        Some(at) => match &words[at + 1..] {
            [] => true,
            [number, protocol, rest @ ..] => {
                number.bytes().all(|b| b.is_ascii_digit())
                    && ["TCP", "UDP", "SCTP"].contains(protocol)
                    && matches!(rest, [] | ["PROTO" | "PORT" | "ADDR"])
            }
            _ => false,
        },
        None => false,
    };
    service || port
}

/// Parses TOML text into a table, naming `origin` in errors.
pub(super) fn parse(text: &str, origin: &str) -> Result<Table, ConfigError> {
    text.parse::<Table>().map_err(|e| ConfigError::Syntax {
        origin: origin.to_string(),
        message: e.to_string(),
    })
}

/// Merges `over` into `base`: tables merge key by key, anything else replaces.
pub(super) fn merge(base: &mut Table, over: Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(inner)), Value::Table(over_inner)) => merge(inner, over_inner),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Applies `UPSLOT_<SECTION>__<KEY>[__<SUBKEY>]` variables to `table`.
///
/// The value's type follows what the key already holds (from the defaults or
/// the file): integers and booleans are parsed, arrays accept either a TOML
/// array (`["a", "b"]`) or a single string; everything else is a string.
pub(super) fn apply_env(
    table: &mut Table,
    env: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if ENV_NOT_KEYS.contains(&name.as_str()) || is_service_link(name) {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        if path.len() < 2 || path.iter().any(String::is_empty) {
            return Err(ConfigError::Env {
                name: name.clone(),
                message: "expected UPSLOT_<SECTION>__<KEY>, e.g. UPSLOT_UPLOAD__SECRET".into(),
            });
        }
        let (last, parents) = path.split_last().ok_or_else(|| ConfigError::Env {
            name: name.clone(),
            message: "empty key".into(),
        })?;
        let mut current = &mut *table;
        for part in parents {
            let entry = current
                .entry(part.clone())
                .or_insert_with(|| Value::Table(Table::new()));
            current = match entry {
                Value::Table(inner) => inner,
                _ => {
                    return Err(ConfigError::Env {
                        name: name.clone(),
                        message: format!("{part} is not a section"),
                    });
                }
            };
        }
        let value =
            typed_env_value(current.get(last), raw).map_err(|message| ConfigError::Env {
                name: name.clone(),
                message,
            })?;
        current.insert(last.clone(), value);
    }
    Ok(())
}

fn typed_env_value(existing: Option<&Value>, raw: &str) -> Result<Value, String> {
    match existing {
        Some(Value::Integer(_)) => raw
            .trim()
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| format!("expected a whole number, got {raw:?}")),
        Some(Value::Boolean(_)) => match raw.trim() {
            "true" | "1" | "yes" => Ok(Value::Boolean(true)),
            "false" | "0" | "no" => Ok(Value::Boolean(false)),
            _ => Err(format!("expected true or false, got {raw:?}")),
        },
        // A TOML array (`["a", "b"]`), or else one string: `[::]:5050`
        // starts with a bracket too.
        Some(Value::Array(_)) => Ok(format!("v = {raw}")
            .parse::<Table>()
            .ok()
            .and_then(|mut table| table.remove("v"))
            .filter(Value::is_array)
            .unwrap_or_else(|| Value::Array(vec![Value::String(raw.to_string())]))),
        _ => Ok(Value::String(raw.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_service_links_are_not_keys() {
        for name in [
            "UPSLOT_SERVICE_HOST",
            "UPSLOT_SERVICE_PORT",
            "UPSLOT_SERVICE_PORT_HTTP",
            "UPSLOT_PORT",
            "UPSLOT_PORT_5050_TCP",
            "UPSLOT_PORT_5050_TCP_PROTO",
            "UPSLOT_PORT_5050_TCP_PORT",
            "UPSLOT_PORT_5050_TCP_ADDR",
            "UPSLOT_ADMIN_SERVICE_HOST",
            "UPSLOT_ADMIN_PORT_5051_TCP_ADDR",
        ] {
            let mut table = Table::new();
            let env = BTreeMap::from([(name.to_string(), "10.96.0.10".to_string())]);
            apply_env(&mut table, &env).unwrap();
            assert!(table.is_empty(), "{name}");
        }
        for typo in [
            "UPSLOT_SECRET",
            "UPSLOT_SERVICE",
            "UPSLOT_PORT_HTTP",
            "UPSLOT_PORTS",
        ] {
            let env = BTreeMap::from([(typo.to_string(), "x".to_string())]);
            assert!(apply_env(&mut Table::new(), &env).is_err(), "{typo}");
        }
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn merge_keeps_untouched_keys() {
        let mut base = parse("[a]\nx = 1\ny = 2\n", "base").unwrap();
        merge(&mut base, parse("[a]\ny = 3\n", "over").unwrap());
        assert_eq!(base["a"]["x"].as_integer(), Some(1));
        assert_eq!(base["a"]["y"].as_integer(), Some(3));
    }

    #[test]
    fn env_follows_existing_types() {
        let mut table = parse("[server]\nmax = 5\nlist = [\"a\"]\nflag = false\n", "t").unwrap();
        apply_env(
            &mut table,
            &env(&[
                ("UPSLOT_SERVER__MAX", "7"),
                ("UPSLOT_SERVER__LIST", "[\"b\", \"c\"]"),
                ("UPSLOT_SERVER__FLAG", "true"),
                ("UPSLOT_UPLOAD__SECRET", "12345"),
                ("UPSLOT_SERVER__TLS__CERT", "/c.pem"),
                ("UPSLOT_CONFIG", "ignored.toml"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(table["server"]["max"].as_integer(), Some(7));
        assert_eq!(table["server"]["list"].as_array().map(Vec::len), Some(2));
        assert_eq!(table["server"]["flag"].as_bool(), Some(true));
        assert_eq!(table["upload"]["secret"].as_str(), Some("12345"));
        assert_eq!(table["server"]["tls"]["cert"].as_str(), Some("/c.pem"));
        assert!(table.get("config").is_none());
    }

    #[test]
    fn env_single_string_becomes_list() {
        let mut table = parse("[server]\nlisten = [\"a\"]\n", "t").unwrap();
        apply_env(&mut table, &env(&[("UPSLOT_SERVER__LISTEN", "[::]:5050")])).unwrap();
        assert_eq!(
            table["server"]["listen"].as_array().unwrap()[0].as_str(),
            Some("[::]:5050")
        );
    }

    #[test]
    fn env_errors_name_the_variable() {
        let mut table = parse("[server]\nmax = 5\n", "t").unwrap();
        let err = apply_env(&mut table, &env(&[("UPSLOT_SERVER__MAX", "many")])).unwrap_err();
        assert!(err.to_string().contains("UPSLOT_SERVER__MAX"));
        let err = apply_env(&mut table, &env(&[("UPSLOT_SECRET", "x")])).unwrap_err();
        assert!(err.to_string().contains("UPSLOT_SECRET"));
    }
}
