//! What a mount option declaration is ([`OptionSpec`]): its value form,
//! default, scope and setter, how a value is applied, the value parsers
//! the table uses, and the `--help` rendering. The table itself is
//! `options::OPTIONS`; declarations are generic over the options they set
//! (`T`), so this module does not depend on the table's module.

use std::path::PathBuf;
use std::time::Duration;

/// Who an option is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Shapes the mount.
    Mount,
    /// Only meaningful to mount(8) / fstab (accepted on the command line too).
    Fstab,
    /// Accepted and ignored: mount(8) and fstab pass it to every helper.
    Ignored,
    /// Refused with the help text as the reason.
    Refused,
}

/// An option's default, as shown by `--help` and applied when the options
/// are built (`MountOptions::defaults`).
pub enum DefaultIs<T> {
    /// Off / unset.
    None,
    /// Must be given.
    Required,
    /// This text, passed through the option's own setter.
    Value(&'static str),
    /// Computed: the description for `--help`, and how.
    Computed(&'static str, fn(&mut T)),
    /// Decided at mount time (described for `--help`).
    AtMount(&'static str),
}

/// A setter's refusal: `Value` becomes "invalid value for NAME: VALUE".
pub enum Invalid {
    Value,
    Message(String),
}

impl From<String> for Invalid {
    fn from(s: String) -> Self {
        Invalid::Message(s)
    }
}

type SetValue<T> = fn(&mut T, &str) -> Result<(), Invalid>;

/// How an option is written and what it does.
pub enum Form<T> {
    /// `name`.
    Flag(fn(&mut T)),
    /// `name=METAVAR`.
    Value(&'static str, SetValue<T>),
    /// `name` or `name=METAVAR` (the setter gets `""` without a value).
    Optional(&'static str, SetValue<T>),
    /// Anything (ignored and refused options).
    Any,
}

// Plain data (names and fn pointers) whatever `T` is; derives would ask
// `T: Copy`.
impl<T> Clone for DefaultIs<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for DefaultIs<T> {}
impl<T> Clone for Form<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Form<T> {}

/// One declared option, setting fields of a `T`.
pub struct OptionSpec<T> {
    /// The key; a trailing `*` matches every key with that prefix (`x-*`).
    pub name: &'static str,
    pub form: Form<T>,
    pub default: DefaultIs<T>,
    pub scope: Scope,
    /// Help text; `\n` starts a continuation line.
    pub help: &'static str,
}

impl<T> OptionSpec<T> {
    /// `name`, `name=METAVAR` or `name[=METAVAR]`, as written in help and README.
    pub fn usage(&self) -> String {
        match self.form {
            Form::Value(m, _) => format!("{}={m}", self.name),
            Form::Optional(m, _) => format!("{}[={m}]", self.name),
            Form::Flag(_) | Form::Any => self.name.to_string(),
        }
    }

    pub(super) fn matches(&self, key: &str) -> bool {
        match self.name.strip_suffix('*') {
            Some(prefix) => key.starts_with(prefix),
            None => key == self.name,
        }
    }

    pub(super) fn apply(&self, o: &mut T, v: Option<&str>) -> Result<(), String> {
        let name = self.name;
        let run = |set: SetValue<T>, o: &mut T, v: &str| {
            set(o, v).map_err(|e| match e {
                Invalid::Value => format!("invalid value for {name}: {v:?}"),
                Invalid::Message(m) => m,
            })
        };
        match (self.scope, self.form, v) {
            (Scope::Refused, _, _) => Err(format!("{name} is not supported: {}", self.help)),
            (Scope::Ignored, _, _) | (_, Form::Any, _) => Ok(()),
            (_, Form::Flag(set), None) => {
                set(o);
                Ok(())
            }
            (_, Form::Flag(_), Some(_)) => Err(format!("option {name} takes no value")),
            (_, Form::Value(_, set), Some(v)) => run(set, o, v),
            (_, Form::Value(..), None) => Err(format!("option {name} needs a value")),
            (_, Form::Optional(_, set), v) => run(set, o, v.unwrap_or("")),
        }
    }
}

pub(super) fn secs(v: &str) -> Result<Duration, Invalid> {
    let f: f64 = v.parse().map_err(|_| Invalid::Value)?;
    if !(0.0..=86400.0 * 365.0).contains(&f) {
        return Err(Invalid::Value);
    }
    Ok(Duration::from_secs_f64(f))
}

pub(super) fn int(v: &str) -> Result<u32, Invalid> {
    v.parse().map_err(|_| Invalid::Value)
}

pub(super) fn path(v: &str) -> Result<PathBuf, Invalid> {
    Ok(PathBuf::from(v))
}

/// `8M`, `512K`, `1G`, `1048576`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'B' => 1,
                _ => return Err(format!("invalid size {s:?}")),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// The `-o` part of `smhfs mount --help`, rendered from a table.
pub fn help_text<T>(options: &[OptionSpec<T>]) -> String {
    let mut out = String::from(
        "Mount options (-o, comma separated, may be repeated; defaults in brackets):\n",
    );
    let line = |out: &mut String, head: &str, text: &str| {
        for (i, l) in text.split('\n').enumerate() {
            let h = if i == 0 { head } else { "" };
            out.push_str(&format!("  {h:<24}{l}\n"));
        }
    };
    for spec in options.iter().filter(|s| s.scope != Scope::Ignored) {
        let default = match spec.default {
            DefaultIs::None => String::new(),
            DefaultIs::Required => " (required)".into(),
            DefaultIs::Value(v) => format!(" [{v}]"),
            DefaultIs::Computed(d, _) | DefaultIs::AtMount(d) => format!(" [{d}]"),
        };
        // Short help: the default on the same line; else on a line of its own.
        let text = if spec.help.contains('\n') || spec.help.len() + default.len() > 68 {
            format!("{}\n{}", spec.help, default.trim_start())
        } else {
            format!("{}{default}", spec.help)
        };
        line(&mut out, &spec.usage(), text.trim_end());
    }
    let ignored: Vec<&str> = options
        .iter()
        .filter(|s| s.scope == Scope::Ignored)
        .map(|s| s.name)
        .collect();
    out.push_str(&format!(
        "  (also accepted and ignored: {})\n",
        ignored.join(", ")
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8M").unwrap(), 8 << 20);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("123").unwrap(), 123);
        assert!(parse_size("M").is_err());
        assert!(parse_size("8X").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }
}
