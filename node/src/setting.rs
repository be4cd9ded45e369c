//! One setting: its row in a settings table ([`Setting`], with the [`Kind`] its value is checked
//! against, [`check_value`]) and the listener syntax (`[NAME://]host:port`). Shared by the broker
//! table ([`crate::config`]) and the cluster table ([`crate::cluster_config`]), which neither
//! imports the other for.

/// How a setting's value is checked.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A signed integer in `[min, max]`.
    Int { min: i64, max: i64 },
    /// `true` or `false`.
    Bool,
    /// Any string.
    Str,
    /// One of a fixed list of words.
    Choice(&'static [&'static str]),
    /// Kafka's LIST: a comma-separated, non-empty list of distinct words from a fixed set.
    List(&'static [&'static str]),
    /// A finite floating-point number in `[min, max]` (Kafka's DOUBLE).
    Double { min: f64, max: f64 },
    /// `[PLAINTEXT://]host:port`, or empty when `allow_empty`.
    Listener { allow_empty: bool },
}

/// One row of the settings table.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Kafka's name for it (the key in every source).
    pub name: &'static str,
    /// The built-in default, in the same text form a user would write.
    pub default: &'static str,
    /// One line for `--help`.
    pub doc: &'static str,
    /// Validator.
    pub kind: Kind,
}

/// `i32::MAX`, the ceiling of Kafka's int settings.
pub(crate) const I32: i64 = i32::MAX as i64;

/// A listener address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Host name or IP, as written.
    pub host: String,
    /// TCP port (0 = pick one when binding).
    pub port: u16,
}

impl Listener {
    /// `host:port` for binding.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Parses `[PLAINTEXT://]host:port`, the client listener of a (possibly comma-separated,
/// named) `listeners` list.
pub fn parse_listener(raw: &str) -> Result<Listener, String> {
    let named = parse_listeners(raw)?;
    named
        .into_iter()
        .find(|(name, _)| name == "PLAINTEXT")
        .map(|(_, l)| l)
        .ok_or_else(|| "no PLAINTEXT listener".to_string())
}

/// Parses `listeners`: `NAME://host:port` entries (a bare `host:port` is PLAINTEXT). Names:
/// PLAINTEXT (clients) and CONTROLLER (the controller quorum and broker-to-controller RPCs).
pub fn parse_listeners(raw: &str) -> Result<Vec<(String, Listener)>, String> {
    let mut out: Vec<(String, Listener)> = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, l) = parse_one_listener(entry)?;
        if out.iter().any(|(n, _)| *n == name) {
            return Err(format!("listener {name} appears twice"));
        }
        out.push((name, l));
    }
    if out.is_empty() {
        return Err("expected host:port".into());
    }
    Ok(out)
}

fn parse_one_listener(first: &str) -> Result<(String, Listener), String> {
    let (name, rest) = match first.split_once("://") {
        Some((proto, rest))
            if proto.eq_ignore_ascii_case("PLAINTEXT")
                || proto.eq_ignore_ascii_case("CONTROLLER") =>
        {
            (proto.to_ascii_uppercase(), rest)
        }
        Some((proto, _)) => return Err(format!("unsupported security protocol {proto}")),
        None => ("PLAINTEXT".to_string(), first),
    };
    let (host, port) = rest.rsplit_once(':').ok_or("expected host:port")?;
    let port: u16 = port.parse().map_err(|_| format!("bad port `{port}`"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    Ok((
        name,
        Listener {
            host: host.to_string(),
            port,
        },
    ))
}

/// Validates `raw` against `kind`; returns the normalised text.
pub fn check_value(kind: Kind, raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    match kind {
        Kind::Int { min, max } => {
            let v: i64 = raw.parse().map_err(|_| "not an integer".to_string())?;
            if v < min || v > max {
                return Err(format!("must be between {min} and {max}"));
            }
            Ok(v.to_string())
        }
        Kind::Bool => match raw.to_ascii_lowercase().as_str() {
            "true" => Ok("true".into()),
            "false" => Ok("false".into()),
            _ => Err("must be true or false".into()),
        },
        Kind::Str => Ok(raw.to_string()),
        Kind::Choice(words) => words
            .iter()
            .find(|w| w.eq_ignore_ascii_case(raw))
            .map(|w| w.to_string())
            .ok_or_else(|| format!("must be one of {}", words.join(", "))),
        Kind::List(words) => check_list(words, raw),
        Kind::Double { min, max } => {
            let v: f64 = raw.parse().map_err(|_| "not a number".to_string())?;
            if !v.is_finite() || v < min || v > max {
                return Err(format!("must be a number between {min} and {max}"));
            }
            Ok(v.to_string())
        }
        Kind::Listener { allow_empty } => {
            if raw.is_empty() && allow_empty {
                return Ok(String::new());
            }
            parse_listeners(raw).map(|_| raw.to_string())
        }
    }
}

/// A list of `words`: each item (trimmed, any case) one of them, none twice, at least one.
/// Normalised to the words' own spelling joined by `,` in the order given.
fn check_list(words: &[&str], raw: &str) -> Result<String, String> {
    let mut out: Vec<&str> = Vec::new();
    for item in raw.split(',').map(str::trim) {
        let Some(word) = words.iter().find(|w| w.eq_ignore_ascii_case(item)) else {
            return Err(format!(
                "`{item}` is not one of {} (a comma-separated list)",
                words.join(", ")
            ));
        };
        if out.contains(word) {
            return Err(format!("`{word}` is listed twice"));
        }
        out.push(word);
    }
    Ok(out.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_distinct_known_words() {
        let kind = Kind::List(&["compact", "delete"]);
        for (raw, normal) in [
            ("delete", "delete"),
            ("compact", "compact"),
            ("compact,delete", "compact,delete"),
            (" Delete , compact ", "delete,compact"),
        ] {
            assert_eq!(check_value(kind, raw).as_deref(), Ok(normal), "{raw:?}");
        }
        for bad in ["", "compact,", "compact,compact", "shred", "delete;compact"] {
            let e = check_value(kind, bad).expect_err(bad);
            assert!(e.contains('`'), "{bad:?}: {e}");
        }
    }

    #[test]
    fn doubles_are_finite_and_in_range() {
        let kind = Kind::Double { min: 0.0, max: 1.0 };
        for (raw, normal) in [("0.5", "0.5"), ("1", "1"), ("0", "0"), ("1e-1", "0.1")] {
            assert_eq!(check_value(kind, raw).as_deref(), Ok(normal), "{raw:?}");
        }
        for bad in ["1.5", "-0.1", "NaN", "inf", "half", ""] {
            assert!(check_value(kind, bad).is_err(), "{bad:?}");
        }
    }
}
