//! The mount-helper surface: `-o` escaping as libmount and fstab write it,
//! and the argv forms `mount -t fuse.smhfs` / `mount.fuse.smhfs` pass.

use std::path::Path;

/// Splits an `-o` value at unescaped commas. `\,` `\\` `\"` `\=` are escapes;
/// double quotes group (and are removed), as libmount allows `key="a,b"`.
pub fn split_options(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ (',' | '\\' | '"' | '=')) => cur.push(e),
                Some(e) => {
                    return Err(format!(
                        "invalid escape '\\{e}' in options {s:?} (escape only , \\ \" =)"
                    ))
                }
                None => return Err(format!("options {s:?} end with a lone backslash")),
            },
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if quoted {
        return Err(format!("unbalanced double quote in options {s:?}"));
    }
    out.push(cur);
    Ok(out)
}

/// Subcommands `main` knows; any other first argument that is not a flag
/// means the mount-helper form `smhfs SOURCE MOUNTPOINT -o ...`.
pub const SUBCOMMANDS: &[&str] = &["mount", "serve", "help", "status", "resume"];

/// Inserts `mount` into the mount-helper argv. Called as `mount.fuse.smhfs`
/// (argv0 `mount.*`, what mount(8) runs), the helper flags of mount(8) are
/// translated: `-f` means a fake mount there, and `-sfnv` may come bundled.
pub fn normalize_argv(mut argv: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let helper = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("mount."));
    if helper {
        let mut out: Vec<std::ffi::OsString> = vec![argv[0].clone(), "mount".into()];
        let mut i = 1;
        while i < argv.len() {
            let a = argv[i].to_str().unwrap_or("");
            if matches!(a, "-o" | "-N" | "-t") {
                out.push(argv[i].clone());
                if let Some(v) = argv.get(i + 1) {
                    out.push(v.clone());
                }
                i += 2;
                continue;
            }
            if a.len() >= 2
                && a.starts_with('-')
                && !a.starts_with("--")
                && a[1..].chars().all(|c| "sfnvh".contains(c))
            {
                for c in a[1..].chars() {
                    out.push(if c == 'f' {
                        "--fake".into()
                    } else {
                        format!("-{c}").into()
                    });
                }
            } else {
                out.push(argv[i].clone());
            }
            i += 1;
        }
        return out;
    }
    if let Some(first) = argv.get(1).and_then(|a| a.to_str()) {
        if !first.starts_with('-') && !SUBCOMMANDS.contains(&first) {
            argv.insert(1, "mount".into());
        }
    }
    argv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::mount::MountArgs;

    /// An argv written as one string (no argument holds a space).
    fn argv(a: &str) -> Vec<std::ffi::OsString> {
        a.split_whitespace().map(Into::into).collect()
    }

    #[test]
    fn option_escaping() {
        let v = |s: &str| split_options(s).unwrap();
        assert_eq!(v("a,b=c"), ["a", "b=c"]);
        assert_eq!(
            v(r"credentials=/etc/a\,b.cred,ro"),
            ["credentials=/etc/a,b.cred", "ro"]
        );
        assert_eq!(v(r#"k="x,y=z",ro"#), ["k=x,y=z", "ro"]);
        assert_eq!(v(r#"k=a\\b\=c\"d"#), [r#"k=a\b=c"d"#]);
        assert_eq!(v("k=a=b"), ["k=a=b"]);
        assert!(split_options(r"k=a\x").unwrap_err().contains("escape"));
        assert!(split_options(r"k=a\").is_err());
        assert!(split_options(r#"k="open"#).is_err());
    }

    #[test]
    fn mount_helper_argv() {
        let v = argv;
        assert_eq!(
            normalize_argv(v(
                "/sbin/mount.fuse.smhfs l:-/p /mnt -sfnv -o a,-f -t fuse.smhfs"
            )),
            v("/sbin/mount.fuse.smhfs mount l:-/p /mnt -s --fake -n -v -o a,-f -t fuse.smhfs")
        );
        assert_eq!(
            normalize_argv(v("mount.fuse.smhfs l /mnt -N 123 -o x")),
            v("mount.fuse.smhfs mount l /mnt -N 123 -o x")
        );
        // Parses with clap as `smhfs mount`.
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            m: MountArgs,
        }
        use clap::Parser;
        let argv = normalize_argv(v("mount.fuse.smhfs l /mnt -f -o x -t fuse.smhfs"));
        let t = T::try_parse_from(argv.into_iter().skip(1)).unwrap();
        assert!(t.m.fake && !t.m.foreground);
        assert_eq!(t.m.fstype.as_deref(), Some("fuse.smhfs"));
    }

    #[test]
    fn helper_argv() {
        let v = argv;
        assert_eq!(
            normalize_argv(v("smhfs lib /mnt -o x")),
            v("smhfs mount lib /mnt -o x")
        );
        assert_eq!(normalize_argv(v("smhfs serve")), v("smhfs serve"));
        assert_eq!(normalize_argv(v("smhfs --help")), v("smhfs --help"));
    }
}
