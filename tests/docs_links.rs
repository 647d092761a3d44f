//! The documentation's links cannot rot: every relative link in `README.md`,
//! `ARCHITECTURE.md` and `docs/*.md` names a file of the repository that exists,
//! and a `#anchor` names a heading of that file by GitHub's slug rules.
//!
//! Line-based, no Markdown parser: fenced code blocks and inline code spans are
//! skipped (a link there is not a link), absolute URLs (`https:`, `mailto:`, …) are
//! not followed. Anchors are computed as GitHub does: the heading's text without
//! its code-span backticks and link syntax, lowercased, every character but
//! letters, digits, spaces, `-` and `_` dropped, spaces turned into `-`, and a
//! repeated slug suffixed `-1`, `-2`, … in order.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Component, Path, PathBuf};

/// The Markdown files whose links are checked, relative to `root`: the README,
/// the architecture map and every page of `docs/`.
fn documentation_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("README.md"), PathBuf::from("ARCHITECTURE.md")];
    let mut pages: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
                .filter_map(|path| path.strip_prefix(root).ok().map(Path::to_path_buf))
                .collect()
        })
        .unwrap_or_default();
    pages.sort();
    files.extend(pages);
    files
}

/// A fence line (```` ``` ```` or `~~~`, possibly indented inside a list item):
/// its character and length.
fn fence(line: &str) -> Option<(char, usize)> {
    let trimmed = line.trim_start();
    let first = trimmed.chars().next()?;
    if first != '`' && first != '~' {
        return None;
    }
    let length = trimmed.chars().take_while(|&c| c == first).count();
    (length >= 3).then_some((first, length))
}

/// The lines of `text` outside fenced code blocks, as (line number, line); a
/// fence line itself is left out.
fn lines_outside_fences(text: &str) -> Vec<(usize, &str)> {
    let mut open: Option<(char, usize)> = None;
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        match (open, fence(line)) {
            (None, Some(found)) => open = Some(found),
            (Some((c, n)), Some((d, m))) if c == d && m >= n && line.trim().len() == m => {
                open = None;
            }
            (None, None) => lines.push((index + 1, line)),
            _ => {}
        }
    }
    lines
}

/// `text` with every inline code span blanked out (its characters, backticks
/// included, become spaces; line breaks stay, so offsets keep their line). A
/// backtick run with no closing run of the same length is literal text.
fn blank_code_spans(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = chars.clone();
    let run_at = |i: usize| chars[i..].iter().take_while(|&&c| c == '`').count();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            i += 1;
            continue;
        }
        let opening = run_at(i);
        let mut j = i + opening;
        let mut closing_at = None;
        while j < chars.len() {
            if chars[j] == '`' {
                let run = run_at(j);
                if run == opening {
                    closing_at = Some(j);
                    break;
                }
                j += run;
            } else {
                j += 1;
            }
        }
        match closing_at {
            Some(close) => {
                for c in &mut out[i..close + opening] {
                    if *c != '\n' {
                        *c = ' ';
                    }
                }
                i = close + opening;
            }
            None => i += opening,
        }
    }
    out.into_iter().collect()
}

/// The paragraphs of `text` outside fenced code, code spans blanked: (number of
/// the paragraph's first line, its lines joined with `\n`). Code spans may wrap
/// lines, so they are blanked per paragraph, not per line.
fn paragraphs(text: &str) -> Vec<(usize, String)> {
    let mut paragraphs: Vec<(usize, String)> = Vec::new();
    // The number of the previous line when it was a non-blank one outside fences.
    let mut previous: Option<usize> = None;
    for (number, line) in lines_outside_fences(text) {
        if line.trim().is_empty() {
            previous = None;
            continue;
        }
        match paragraphs.last_mut() {
            Some((_, paragraph)) if previous == Some(number - 1) => {
                paragraph.push('\n');
                paragraph.push_str(line);
            }
            _ => paragraphs.push((number, line.to_owned())),
        }
        previous = Some(number);
    }
    paragraphs
        .into_iter()
        .map(|(number, paragraph)| (number, blank_code_spans(&paragraph)))
        .collect()
}

/// GitHub's anchor for a heading's text.
fn slug(heading: &str) -> String {
    let text = link_texts(&heading.replace('`', ""));
    text.trim()
        .to_lowercase()
        .chars()
        .filter(|&c| c.is_alphanumeric() || c == ' ' || c == '-' || c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// `[text](target)` replaced by `text`, as a heading's anchor sees it.
fn link_texts(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let Some(middle) = rest[open..].find("](").map(|m| open + m) else {
            break;
        };
        let Some(close) = rest[middle..].find(')').map(|c| middle + c) else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(&rest[open + 1..middle]);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Every anchor of a Markdown file: the slugs of its ATX headings, outside fenced
/// code, with GitHub's `-1`, `-2`, … for repeats.
fn anchors(text: &str) -> HashSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut anchors = HashSet::new();
    for (_, line) in lines_outside_fences(text) {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let trimmed = line.trim_start_matches(' ');
        let level = trimmed.chars().take_while(|&c| c == '#').count();
        if indent > 3 || !(1..=6).contains(&level) {
            continue;
        }
        let after = &trimmed[level..];
        if !(after.is_empty() || after.starts_with(' ') || after.starts_with('\t')) {
            continue;
        }
        // An optional closing sequence of `#`s is not part of the text.
        let text = after.trim();
        let text = match text.trim_end_matches('#') {
            stripped if stripped.is_empty() || stripped.ends_with(' ') => stripped.trim_end(),
            _ => text,
        };
        let base = slug(text);
        let count = seen.entry(base.clone()).or_insert(0);
        let anchor = if *count == 0 {
            base.clone()
        } else {
            format!("{base}-{count}")
        };
        *count += 1;
        anchors.insert(anchor);
    }
    anchors
}

/// A link found in a file: its line and its target as written.
#[derive(Debug, PartialEq)]
struct Link {
    line: usize,
    target: String,
}

/// The targets of `[text](target)`, `![alt](target)` and `[label]: target` in
/// `text`, outside code.
fn links(text: &str) -> Vec<Link> {
    let mut links = Vec::new();
    for (first_line, paragraph) in paragraphs(text) {
        let line_of = |offset: usize| first_line + paragraph[..offset].matches('\n').count();
        let mut from = 0;
        while let Some(found) = paragraph[from..].find("](") {
            let start = from + found + 2;
            if let Some(target) = inline_target(&paragraph[start..]) {
                links.push(Link {
                    line: line_of(start),
                    target,
                });
            }
            from = start;
        }
        let mut offset = 0;
        for line in paragraph.split('\n') {
            if let Some(target) = reference_definition(line) {
                links.push(Link {
                    line: line_of(offset),
                    target,
                });
            }
            offset += line.len() + 1;
        }
    }
    links
}

/// The destination at the start of `rest` (just after `](`): `<…>`, or up to
/// whitespace or the `)` that closes the link (parentheses may nest).
fn inline_target(rest: &str) -> Option<String> {
    let rest = rest.trim_start_matches([' ', '\t']);
    if let Some(bracketed) = rest.strip_prefix('<') {
        return bracketed.find('>').map(|end| bracketed[..end].to_owned());
    }
    let mut depth = 0usize;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return Some(rest[..i].to_owned()),
            ')' => depth -= 1,
            c if c.is_whitespace() => return Some(rest[..i].to_owned()),
            _ => {}
        }
    }
    None
}

/// The destination of a reference definition line, `[label]: target`.
fn reference_definition(line: &str) -> Option<String> {
    let trimmed = line.trim_start();
    if !trimmed.starts_with('[') || trimmed.starts_with("[^") {
        return None;
    }
    let (_, after) = trimmed.split_once("]:")?;
    let target = after.split_whitespace().next()?;
    Some(
        target
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_owned(),
    )
}

/// A target with a scheme (`https:`, `mailto:`, …) points outside the repository.
fn is_absolute_url(target: &str) -> bool {
    let scheme_end = target.find(':');
    let path_start = target.find(['/', '#', '?']);
    match (scheme_end, path_start) {
        (Some(colon), Some(other)) => colon < other && colon > 0,
        (Some(colon), None) => colon > 0,
        _ => false,
    }
}

/// `%XX` escapes decoded (a link to a file with a space in its name, say).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |i: usize| bytes.get(i).and_then(|&b| (b as char).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let (b'%', Some(high), Some(low)) = (bytes[i], hex(i + 1), hex(i + 2)) {
            out.extend(u8::try_from(high * 16 + low));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `base` (a directory relative to the root) joined with `relative`, `.` and `..`
/// resolved; `None` if it climbs out of the repository.
fn resolve(base: &Path, relative: &str) -> Option<PathBuf> {
    let mut parts: Vec<String> = base
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if relative.starts_with('/') {
        parts.clear();
    }
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Some(parts.iter().collect())
}

/// Every broken link of `files` (relative to `root`), one line each:
/// `file:line: target: why`. Also returns how many relative links were checked.
fn broken_links(root: &Path, files: &[PathBuf]) -> (Vec<String>, usize) {
    let mut broken = Vec::new();
    let mut checked = 0;
    let mut anchor_cache: HashMap<PathBuf, HashSet<String>> = HashMap::new();
    for file in files {
        let text = match fs::read_to_string(root.join(file)) {
            Ok(text) => text,
            Err(err) => {
                broken.push(format!("{}: cannot read: {err}", file.display()));
                continue;
            }
        };
        let base = file.parent().unwrap_or(Path::new(""));
        for link in links(&text) {
            if link.target.is_empty() || is_absolute_url(&link.target) {
                continue;
            }
            checked += 1;
            let mut report = |why: String| {
                broken.push(format!(
                    "{}:{}: {}: {why}",
                    file.display(),
                    link.line,
                    link.target
                ));
            };
            let (path_part, anchor) = match link.target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (link.target.as_str(), None),
            };
            let path_part = path_part.split('?').next().unwrap_or_default();
            let target = if path_part.is_empty() {
                file.clone()
            } else {
                match resolve(base, &percent_decode(path_part)) {
                    Some(target) => target,
                    None => {
                        report("leaves the repository".to_owned());
                        continue;
                    }
                }
            };
            let on_disk = root.join(&target);
            if !on_disk.exists() {
                report(format!("no such file: {}", target.display()));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if target.extension().is_none_or(|ext| ext != "md") || on_disk.is_dir() {
                report(format!(
                    "an anchor on {}, which is not a Markdown file",
                    target.display()
                ));
                continue;
            }
            let anchors = anchor_cache.entry(target.clone()).or_insert_with(|| {
                fs::read_to_string(&on_disk)
                    .map(|text| anchors(&text))
                    .unwrap_or_default()
            });
            let anchor = percent_decode(anchor);
            if !anchors.contains(&anchor) {
                let mut known: Vec<&String> = anchors.iter().collect();
                known.sort();
                report(format!(
                    "no heading with the anchor #{anchor} in {} (its anchors: {known:?})",
                    target.display()
                ));
            }
        }
    }
    (broken, checked)
}

#[test]
fn every_relative_link_names_an_existing_file_and_heading() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = documentation_files(root);
    assert!(
        files.iter().any(|f| f == Path::new("docs/README.md")),
        "docs/README.md, the index of the documentation, is missing: {files:?}"
    );
    let (broken, checked) = broken_links(root, &files);
    assert!(
        broken.is_empty(),
        "{} broken link(s) in the documentation:\n{}",
        broken.len(),
        broken.join("\n")
    );
    assert!(
        checked > 50,
        "only {checked} relative links found: is the parser still finding links?"
    );
}

#[test]
fn a_link_to_a_missing_file_or_heading_is_reported() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    fs::create_dir(dir.path().join("docs")).unwrap();
    fs::write(
        dir.path().join("README.md"),
        "# Title\n\n## A `code` heading: here\n\n\
         [ok](docs/page.md#the-page) [ok](#a-code-heading-here) [ok](#title)\n\
         [missing file](docs/nope.md) [missing heading](docs/page.md#nowhere)\n\
         [outside](../elsewhere.md) [web](https://example.com/x.md)\n",
    )
    .unwrap();
    fs::write(dir.path().join("docs/page.md"), "# The page\n").unwrap();
    let (broken, checked) = broken_links(dir.path(), &[PathBuf::from("README.md")]);
    assert_eq!(checked, 6, "{broken:?}");
    assert_eq!(broken.len(), 3, "{broken:#?}");
    assert!(
        broken[0].starts_with("README.md:6: docs/nope.md: no such file"),
        "{broken:#?}"
    );
    assert!(broken[1].starts_with("README.md:6: docs/page.md#nowhere: no heading"));
    assert!(broken[2].starts_with("README.md:7: ../elsewhere.md: leaves the repository"));
}

#[test]
fn anchors_follow_githubs_slug_rules() {
    let text = "# account — a JWT service\n\
                ## The example: `todo-service`\n\
                ### Each leg: `cargo bench --bench perf`\n\
                ## What's new? (2026)\n\
                ## snake_case & more\n\
                ## Ünïcödé letters\n\
                ## Repeated\n\
                ## Repeated\n\
                ## Closed heading ##\n\
                ```\n\
                # not a heading\n\
                ```\n\
                #not-a-heading-either\n";
    let mut found: Vec<String> = anchors(text).into_iter().collect();
    found.sort();
    assert_eq!(
        found,
        [
            "account--a-jwt-service",
            "closed-heading",
            "each-leg-cargo-bench---bench-perf",
            "repeated",
            "repeated-1",
            "snake_case--more",
            "the-example-todo-service",
            "whats-new-2026",
            "ünïcödé-letters",
        ]
    );
}

#[test]
fn links_inside_code_are_not_links() {
    let text = "[a](a.md) `[b](b.md)` and ``[c](c.md)`` and a span that `wraps\n\
                [d](d.md)` over a line; [e](e.md \"title\")\n\
                \n\
                ```sh\n\
                [f](f.md)\n\
                ```\n\
                [g]: g.md\n\
                a lone ` backtick, then [h](h.md)\n";
    let mut found: Vec<(usize, String)> = links(text)
        .into_iter()
        .map(|link| (link.line, link.target))
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            (1, "a.md".to_owned()),
            (2, "e.md".to_owned()),
            (7, "g.md".to_owned()),
            (8, "h.md".to_owned()),
        ]
    );
}
