//! Backups of keyrings: the keyring text (ENCSTR-v1 §1) encrypted to age
//! recipients — X25519 (`age1…`) and SSH (`ssh-ed25519`, `ssh-rsa`) public
//! keys — in the standard ASCII-armored age format, so `age -d` opens them
//! too. Whoever writes a backup needs only public keys; the identities that
//! open it can stay offline.
//!
//! Errors name the recipient or identity file and what is wrong with it,
//! never key material.

use std::io::{Read, Write};
use std::str::FromStr;

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keyring::Keyring;

/// In a backup ConfigMap, entry `<entry>` (a data key ending in `.age`)
/// has its key ids, oldest first and the primary last, comma-separated,
/// in the annotation `backup.encstr.io/<entry>`.
pub const IDS_ANNOTATION_PREFIX: &str = "backup.encstr.io/";

/// The largest backup read (a keyring of thousands of keys is far smaller).
pub const MAX_BACKUP: usize = 1 << 20;

/// A recipient a backup is encrypted to.
pub type Recipient = Box<dyn age::Recipient + Send + Sync>;

/// An identity that may open a backup.
pub type Identity = Box<dyn age::Identity + Send + Sync>;

fn bad(what: String) -> Error {
    Error::Backup(what)
}

/// The start of a recipient, enough to find it in a list; only for text
/// that starts as a public recipient does (`age1`, `ssh-`, the ENCSTR
/// recipient prefix).
fn shown(s: &str) -> String {
    let short: String = s.chars().take(20).collect();
    if short.len() < s.len() { format!("{short}…") } else { short }
}

/// Parse one recipient: `age1…`, `ssh-ed25519 AAAA…` or `ssh-rsa AAAA…`
/// (an SSH comment after the key is allowed).
pub fn parse_recipient(s: &str) -> Result<Recipient> {
    let s = s.trim();
    if s.starts_with(crate::recipient::PREFIX) {
        return Err(bad(format!(
            "recipient {:?}: this is an ENCSTR recipient (for sealing values: `encstr seal --recipient`), not a backup recipient (age1… or an SSH public key)",
            shown(s)
        )));
    }
    if s.starts_with("age1") {
        age::x25519::Recipient::from_str(s)
            .map(|r| Box::new(r) as Recipient)
            .map_err(|e| bad(format!("recipient {:?}: not a valid age X25519 recipient ({e})", shown(s))))
    } else if s.starts_with("ssh-") {
        use age::ssh::ParseRecipientKeyError as E;
        age::ssh::Recipient::from_str(s).map(|r| Box::new(r) as Recipient).map_err(|e| {
            let why = match e {
                E::Ignore => "an SSH key type age does not support (use ssh-ed25519 or ssh-rsa)".to_owned(),
                E::Invalid(why) => format!("not a valid SSH public key ({why})"),
                E::RsaModulusTooLarge => "an ssh-rsa key larger than 4096 bits".to_owned(),
                E::RsaModulusTooSmall => "an ssh-rsa key smaller than 2048 bits".to_owned(),
                E::Unsupported(t) => format!("an SSH key of unsupported type {t}"),
                _ => "not a supported SSH public key".to_owned(),
            };
            bad(format!("recipient {:?}: {why}", shown(s)))
        })
    } else if looks_secret(s) {
        // Not a character of it is shown: it is a secret.
        Err(bad("this is a secret key (an age identity or a private key), not a recipient: give its public recipient instead (`age-keygen -y FILE`, or the `.pub` file); nothing of it is shown".into()))
    } else {
        // Unknown text may be anything (a key pasted in the wrong place):
        // it is not echoed.
        Err(bad(format!(
            "a recipient of {} characters (not shown) is not an age recipient (age1…) or an SSH public key (ssh-ed25519, ssh-rsa)",
            s.chars().count()
        )))
    }
}

/// Whether text given as a recipient is a secret: an age identity, a
/// plugin identity, or a PEM/OpenSSH private key.
fn looks_secret(s: &str) -> bool {
    let upper = s.to_ascii_uppercase();
    upper.starts_with("AGE-SECRET-KEY-") || upper.starts_with("AGE-PLUGIN-") || upper.contains("PRIVATE KEY")
}

/// Parse a recipients file: one recipient per line; blank lines and lines
/// starting with `#` are skipped (the format `age -R` reads).
pub fn parse_recipients_file(text: &str, file: &str) -> Result<Vec<Recipient>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| parse_recipient(l).map_err(|e| bad(format!("{file} line {}: {}", i + 1, strip(&e)))))
        .collect()
}

fn strip(e: &Error) -> String {
    match e {
        Error::Backup(m) => m.clone(),
        other => other.to_string(),
    }
}

/// Encrypt `keyring` to every recipient: an ASCII-armored age file.
pub fn encrypt(keyring: &Keyring, recipients: &[Recipient]) -> Result<String> {
    if recipients.is_empty() {
        return Err(bad("no recipient to encrypt to".into()));
    }
    let text = keyring.to_text();
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r.as_ref() as &dyn age::Recipient))
            .map_err(|e| bad(format!("cannot encrypt to these recipients: {e}")))?;
    let mut out = Vec::with_capacity(text.len() * 2 + 1024);
    let io = |e: std::io::Error| bad(format!("cannot encrypt: {e}"));
    let armor = ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor).map_err(io)?;
    let mut w = encryptor.wrap_output(armor).map_err(io)?;
    w.write_all(text.as_bytes()).map_err(io)?;
    w.finish().and_then(|a| a.finish()).map_err(io)?;
    String::from_utf8(out).map_err(|_| bad("armored output is not text".into()))
}

/// Parse identities: an age identity file (`AGE-SECRET-KEY-1…` lines, as
/// `age-keygen` writes) or an unencrypted OpenSSH ed25519/RSA private key.
/// `file` names the file in errors.
pub fn parse_identities(data: &[u8], file: &str) -> Result<Vec<Identity>> {
    let text = std::str::from_utf8(data).map_err(|_| bad(format!("identity file {file}: not text")))?;
    if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----")
        || text.contains("-----BEGIN RSA PRIVATE KEY-----")
    {
        let id = age::ssh::Identity::from_buffer(data, Some(file.to_owned()))
            .map_err(|e| bad(format!("identity file {file}: not a valid SSH private key ({e})")))?;
        return match id {
            age::ssh::Identity::Unencrypted(_) => Ok(vec![Box::new(id) as Identity]),
            age::ssh::Identity::Encrypted(_) => Err(bad(format!(
                "identity file {file}: a passphrase-protected SSH key; decrypt a copy with `ssh-keygen -p` on the offline machine"
            ))),
            age::ssh::Identity::Unsupported(_) => Err(bad(format!(
                "identity file {file}: an SSH key type age does not support (use ed25519 or RSA)"
            ))),
        };
    }
    let ids = age::IdentityFile::from_buffer(data)
        .map_err(|e| bad(format!("identity file {file}: not an age identity file ({e})")))?
        .into_identities()
        .map_err(|e| bad(format!("identity file {file}: {e}")))?;
    if ids.is_empty() {
        return Err(bad(format!(
            "identity file {file}: holds no identity (expected AGE-SECRET-KEY-1… lines)"
        )));
    }
    Ok(ids)
}

/// Decrypt a backup (armored or binary age) with any of `identities` and
/// parse the keyring it holds.
pub fn decrypt(backup: &[u8], identities: &[Identity]) -> Result<Keyring> {
    if backup.len() > MAX_BACKUP {
        return Err(bad(format!("larger than {MAX_BACKUP} bytes; not a keyring backup")));
    }
    let decryptor =
        age::Decryptor::new(ArmoredReader::new(backup)).map_err(|e| bad(format!("not an age file ({e})")))?;
    let mut reader = decryptor.decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity)).map_err(
        |e| match e {
            age::DecryptError::NoMatchingKeys => bad("none of the identities given opens this backup".into()),
            other => bad(format!("cannot decrypt: {other}")),
        },
    )?;
    let mut plain = Zeroizing::new(Vec::with_capacity(MAX_BACKUP.min(backup.len() + 64)));
    let mut limited = (&mut reader).take(MAX_BACKUP as u64 + 1);
    limited.read_to_end(&mut plain).map_err(|e| bad(format!("cannot decrypt: {e}")))?;
    if plain.len() > MAX_BACKUP {
        return Err(bad("the decrypted content is too large to be a keyring".into()));
    }
    let text = std::str::from_utf8(&plain)
        .map_err(|_| bad("the decrypted content is not a keyring (not text)".into()))?;
    Keyring::parse(text).map_err(|e| bad(format!("the decrypted content is not a valid keyring ({e})")))
}

#[cfg(test)]
mod tests {
    use age::secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn a_secret_key_or_unknown_text_given_as_a_recipient_is_never_echoed() {
        let identity = "AGE-SECRET-KEY-1QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7LQPZRY9X8GF2TVDW0S3JN54KHCE6";
        let lower = identity.to_lowercase();
        let pem = "-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAA";
        for (text, want) in [
            (identity, "secret key"),
            (lower.as_str(), "secret key"),
            (pem, "secret key"),
            ("hunter2-my-password", "(not shown)"),
        ] {
            let Err(e) = parse_recipient(text) else { panic!("accepted") };
            let msg = e.to_string();
            assert!(msg.contains(want), "{msg}");
            for piece in [&text[..8], &text[text.len() - 8..], "QPZRY", "qpzry", "hunter"] {
                assert!(!msg.contains(piece), "{piece:?} echoed: {msg}");
            }
        }
    }

    fn ring() -> Keyring {
        let mut r = Keyring::generate().expect("keyring");
        r.append(crate::Key::generate().expect("key")).expect("append");
        r
    }

    #[test]
    fn x25519_round_trip_armored_and_any_recipient_opens_it() {
        let (a, b) = (age::x25519::Identity::generate(), age::x25519::Identity::generate());
        let rs = vec![
            parse_recipient(&a.to_public().to_string()).expect("a"),
            parse_recipient(&format!("  {}\n", b.to_public())).expect("b"),
        ];
        let r = ring();
        let armored = encrypt(&r, &rs).expect("encrypt");
        assert!(armored.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
        assert!(!armored.contains(r.to_text().lines().next().expect("line")), "no key material in clear");
        for id in [&a, &b] {
            let ids =
                parse_identities(id.to_string().expose_secret().as_bytes(), "id.txt").expect("identity");
            assert_eq!(decrypt(armored.as_bytes(), &ids).expect("decrypt").to_text(), r.to_text());
        }
        let other = age::x25519::Identity::generate();
        let ids =
            parse_identities(other.to_string().expose_secret().as_bytes(), "other.txt").expect("identity");
        let e = decrypt(armored.as_bytes(), &ids).expect_err("wrong identity").to_string();
        assert_eq!(e, "backup: none of the identities given opens this backup");
    }

    #[test]
    fn bad_recipients_identities_and_files_are_named() {
        for (r, want) in [
            ("age1notvalid", "not a valid age X25519 recipient"),
            ("ssh-ed25519 AAAAnotbase64!", "not a valid SSH public key"),
            ("ecdsa-sha2-nistp256 AAAA", "not an age recipient (age1…) or an SSH public key"),
            ("", "not an age recipient"),
            (
                "ENCSTR-RECIPIENT:Ai01PUrdkXai64TkzeGjfLiVwYMqvF6GHz1BFQvuuU30mlJAQgJ/Jj8=",
                "this is an ENCSTR recipient (for sealing values: `encstr seal --recipient`), not a backup recipient",
            ),
        ] {
            let e = parse_recipient(r).err().expect(r).to_string();
            assert!(e.contains(want), "{r}: {e}");
        }
        let e = parse_recipients_file("# team\n\nage1bad\n", "recipients.txt")
            .err()
            .expect("bad line")
            .to_string();
        assert!(e.starts_with("backup: recipients.txt line 3: recipient \"age1bad\""), "{e}");
        assert_eq!(
            encrypt(&ring(), &[]).expect_err("none").to_string(),
            "backup: no recipient to encrypt to"
        );
        let e = parse_identities(b"# nothing\n", "empty.txt").err().expect("empty").to_string();
        assert!(e.contains("empty.txt"), "{e}");
        let e = decrypt(b"not age", &[]).expect_err("not age").to_string();
        assert!(e.starts_with("backup: not an age file"), "{e}");
    }

    #[test]
    fn a_backup_of_something_else_is_not_a_keyring() {
        let id = age::x25519::Identity::generate();
        let recipient: &dyn age::Recipient = &id.to_public();
        let enc = age::Encryptor::with_recipients(std::iter::once(recipient)).expect("encryptor");
        let mut out = Vec::new();
        let mut w = enc.wrap_output(&mut out).expect("wrap");
        w.write_all(b"hello\n").expect("write");
        w.finish().expect("finish");
        let ids = parse_identities(id.to_string().expose_secret().as_bytes(), "id").expect("identity");
        let e = decrypt(&out, &ids).expect_err("not a keyring").to_string();
        assert!(e.contains("not a valid keyring"), "{e}");
    }
}
