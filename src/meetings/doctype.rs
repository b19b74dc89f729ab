//! Which documents may be shared in a meeting, told by the file's first bytes and checked
//! against its name: a program renamed `bienban.pdf` is refused, not passed on to every
//! participant. Pure.

/// What a file's first bytes say it is.
fn sniff(head: &[u8]) -> Option<&'static str> {
    let starts = |m: &[u8]| head.starts_with(m);
    Some(if starts(b"%PDF-") {
        "pdf"
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        "png"
    } else if starts(b"\xff\xd8\xff") {
        "jpeg"
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        "gif"
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        "webp"
    } else if starts(b"PK\x03\x04") {
        "zip"
    } else if starts(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1") {
        "ole"
    } else if starts(b"MZ") || starts(b"\x7fELF") || starts(b"#!") {
        "program"
    } else if !head.contains(&0) && utf8_prefix(head) {
        "text"
    } else {
        return None;
    })
}

/// Whether `head` is UTF-8, allowing a character cut off at its end.
fn utf8_prefix(head: &[u8]) -> bool {
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    }
}

/// (extension, what its content must sniff as, MIME type)
const ALLOWED: &[(&str, &str, &str)] = &[
    ("pdf", "pdf", "application/pdf"),
    ("png", "png", "image/png"),
    ("jpg", "jpeg", "image/jpeg"),
    ("jpeg", "jpeg", "image/jpeg"),
    ("gif", "gif", "image/gif"),
    ("webp", "webp", "image/webp"),
    (
        "docx",
        "zip",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    (
        "xlsx",
        "zip",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    (
        "pptx",
        "zip",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
    ("odt", "zip", "application/vnd.oasis.opendocument.text"),
    (
        "ods",
        "zip",
        "application/vnd.oasis.opendocument.spreadsheet",
    ),
    (
        "odp",
        "zip",
        "application/vnd.oasis.opendocument.presentation",
    ),
    ("doc", "ole", "application/msword"),
    ("xls", "ole", "application/vnd.ms-excel"),
    ("ppt", "ole", "application/vnd.ms-powerpoint"),
    ("txt", "text", "text/plain; charset=utf-8"),
];

/// The MIME type of a file named `name` whose content starts with `head`, or why it may
/// not be shared.
pub fn check(name: &str, head: &[u8]) -> Result<&'static str, String> {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let Some((_, want, mime)) = ALLOWED.iter().find(|(e, _, _)| *e == ext) else {
        return Err(format!(
            "{name:?}: only PDF, Office (doc, docx, xls, xlsx, ppt, pptx, odt, ods, odp), \
             images (png, jpg, gif, webp) and text files may be shared"
        ));
    };
    match sniff(head) {
        Some(got) if got == *want => Ok(mime),
        Some(got) => Err(format!(
            "{name:?} is named .{ext} but its content is {}",
            match got {
                "program" => "a program".to_string(),
                "zip" => "a ZIP archive".to_string(),
                "ole" => "an old Office document".to_string(),
                g => format!("a {} file", g.to_uppercase()),
            }
        )),
        None => Err(format!("{name:?} is named .{ext} but its content is not")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_documents_pass_with_their_mime_type() {
        assert_eq!(check("Biên bản.pdf", b"%PDF-1.7\n"), Ok("application/pdf"));
        assert_eq!(check("a.PNG", b"\x89PNG\r\n\x1a\n...."), Ok("image/png"));
        assert_eq!(check("a.jpg", b"\xff\xd8\xff\xe0"), Ok("image/jpeg"));
        assert!(check("kế hoạch.docx", b"PK\x03\x04\x14\x00").is_ok());
        assert!(check("a.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1").is_ok());
        assert!(check("ghi chú.txt", "Xin chào các đồng chí".as_bytes()).is_ok());
        // A Vietnamese character cut at the end of the first block is still text.
        let t = "ồ".as_bytes();
        assert!(check("a.txt", &t[..2]).is_ok());
    }

    #[test]
    fn disguised_and_unknown_files_are_refused() {
        let e = check("bienban.pdf", b"MZ\x90\x00").unwrap_err();
        assert!(e.contains("a program"), "{e}");
        let e = check("anh.jpg", b"%PDF-1.4").unwrap_err();
        assert!(e.contains("PDF"), "{e}");
        assert!(check("virus.exe", b"MZ").is_err());
        assert!(check("noext", b"%PDF-").is_err());
        assert!(check("a.txt", b"\x00\x01\x02").is_err());
        assert!(check("a.pdf", b"").is_err());
        assert!(check("a.docx", b"%PDF").is_err());
        // Garbage never panics.
        let mut r = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            let bytes: Vec<u8> = (0..(r % 16)).map(|i| (r >> (i * 3)) as u8).collect();
            let _ = check("x.pdf", &bytes);
            let _ = check("x.txt", &bytes);
        }
    }
}
