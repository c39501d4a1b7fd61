//! Reading the tar streams `git archive` writes (ustar, with pax headers
//! for long names and the commit in a global header), to compare two
//! commits' archives entry by entry: what a delta must send is what the
//! archives differ in, whatever the trees say (`export-subst`,
//! `export-ignore`, a `.gitattributes` change).

use std::collections::BTreeMap;

/// One entry of an archive: its type (`b'0'` a file, `b'2'` a symlink,
/// `b'5'` a folder), mode, content and link target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    pub kind: u8,
    pub mode: u32,
    pub data: &'a [u8],
    pub link: String,
}

impl Entry<'_> {
    pub fn is_dir(&self) -> bool {
        self.kind == b'5'
    }
}

/// Every entry by path (folders without their trailing `/`); `None` when
/// the stream is not a tar this reader understands.
pub fn entries(bytes: &[u8]) -> Option<BTreeMap<String, Entry<'_>>> {
    let mut out = BTreeMap::new();
    let mut at = 0;
    // A pax header's path and linkpath, for the entry after it.
    let (mut long_path, mut long_link): (Option<String>, Option<String>) = (None, None);
    let mut ended = false;
    while at + 512 <= bytes.len() {
        let header = &bytes[at..at + 512];
        if header.iter().all(|&b| b == 0) {
            ended = true;
            break;
        }
        let size = octal(&header[124..136])? as usize;
        let data = bytes.get(at + 512..at + 512 + size)?;
        at += 512 + size.div_ceil(512) * 512;
        let kind = match header[156] {
            0 => b'0',
            k => k,
        };
        match kind {
            b'g' => continue,
            b'x' => {
                for (key, value) in pax(data)? {
                    match key.as_str() {
                        "path" => long_path = Some(value),
                        "linkpath" => long_link = Some(value),
                        _ => {}
                    }
                }
                continue;
            }
            _ => {}
        }
        let name = text(&header[0..100]);
        let prefix = text(&header[345..500]);
        let path = long_path.take().unwrap_or_else(|| {
            if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            }
        });
        let link = long_link.take().unwrap_or_else(|| text(&header[157..257]));
        let entry = Entry {
            kind,
            mode: octal(&header[100..108])? as u32,
            data,
            link,
        };
        out.insert(path.trim_end_matches('/').to_string(), entry);
    }
    ended.then_some(out)
}

/// A NUL-terminated field.
fn text(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// An octal number field (spaces and NULs around it).
fn octal(field: &[u8]) -> Option<u64> {
    let digits = text(field);
    let digits = digits.trim();
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}

/// The records of a pax header: `LEN key=value\n`.
fn pax(mut data: &[u8]) -> Option<Vec<(String, String)>> {
    let mut records = Vec::new();
    while !data.is_empty() {
        let space = data.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&data[..space]).ok()?.parse().ok()?;
        let record = data.get(space + 1..len)?;
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        let eq = record.iter().position(|&b| b == b'=')?;
        records.push((
            String::from_utf8_lossy(&record[..eq]).into_owned(),
            String::from_utf8_lossy(&record[eq + 1..]).into_owned(),
        ));
        data = &data[len..];
    }
    Some(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_git_archive_writes() {
        let dir = std::env::temp_dir().join(format!("gantry-tar-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sh = |script: &str| {
            let out = std::process::Command::new("sh")
                .args(["-c", script])
                .current_dir(&dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        };
        let long = "d".repeat(120);
        sh(&format!(
            "git init -q . && mkdir -p {long} && printf 'x' > {long}/f.txt && printf '#!/bin/sh\\n' > run.sh && chmod +x run.sh && ln -s run.sh link && \
             git add -A && git -c user.name=t -c user.email=t@t commit -q -m one"
        ));
        let bytes = sh("git archive HEAD");
        let all = entries(&bytes).expect("a tar");
        let file = &all[&format!("{long}/f.txt")];
        assert_eq!((file.kind, file.data), (b'0', &b"x"[..]));
        assert!(all[&long].is_dir());
        assert_eq!(all["run.sh"].mode & 0o111, 0o111);
        assert_eq!(all["link"].kind, b'2');
        assert_eq!(all["link"].link, "run.sh");
        assert_eq!(entries(&bytes[..700]), None, "a stream cut short");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
