//! A program's settings, declared once: each environment variable with its
//! default and one line of help. The tables themselves live beside the code
//! that reads them ([`crate::verifier::SETTINGS`], the connection limits of
//! the serving code, the account service's and the todo service's); a
//! program's `--help` prints its table with [`help`], and tests check that
//! each parser reads exactly its table and that `docs/configuration.md`
//! lists exactly it.

/// One environment variable of a program.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub name: &'static str,
    /// The default as people read it (a value, or what happens when unset).
    pub default: fn() -> String,
    /// One line: what it does, and its bounds.
    pub help: fn() -> String,
}

impl Setting {
    /// The default, as `--help` shows it.
    pub fn default_text(&self) -> String {
        (self.default)()
    }

    /// The help line, as `--help` shows it.
    pub fn help_text(&self) -> String {
        (self.help)()
    }
}

/// `RUST_LOG`: read by the logging set-up of every program, not by their
/// configuration parsers.
pub const RUST_LOG: Setting = Setting {
    name: "RUST_LOG",
    default: || "info".into(),
    help: || "log filter (tracing-subscriber EnvFilter syntax, e.g. account=debug)".into(),
};

/// The settings as `--help` prints them after the usage: a heading, then
/// for each one its name and default, and its help line beneath.
pub fn help(settings: &[Setting]) -> String {
    let mut text = String::from("Settings (environment variables):\n");
    for setting in settings {
        text.push_str(&format!(
            "  {}  [default: {}]\n      {}\n",
            setting.name,
            setting.default_text(),
            setting.help_text()
        ));
    }
    text
}

/// The test helpers every table's tests share: the names of a table, a
/// recording variable lookup, and the names a section of
/// `docs/configuration.md` documents.
#[cfg(test)]
pub(crate) mod check {
    use std::cell::RefCell;
    use std::collections::{BTreeSet, HashMap};

    use super::{Setting, help};

    pub fn names(settings: &[Setting]) -> BTreeSet<String> {
        settings.iter().map(|s| s.name.to_owned()).collect()
    }

    /// A lookup over `vars` that records every name asked for.
    pub struct Recording {
        vars: HashMap<String, String>,
        read: RefCell<BTreeSet<String>>,
    }

    impl Recording {
        pub fn new(vars: &[(&str, &str)]) -> Self {
            Self {
                vars: vars
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                read: RefCell::default(),
            }
        }

        pub fn var(&self, name: &str) -> Option<String> {
            self.read.borrow_mut().insert(name.to_owned());
            self.vars.get(name).cloned()
        }

        pub fn read(&self) -> BTreeSet<String> {
            self.read.borrow().clone()
        }
    }

    /// Each name appears once in `settings`.
    pub fn declared_once(settings: &[Setting]) {
        assert_eq!(
            names(settings).len(),
            settings.len(),
            "a name is declared twice"
        );
    }

    /// The variable names in the first cell of each table row of the
    /// section `heading` of `docs/configuration.md` (a cell may name
    /// several: `` `HOST`, `PORT` ``).
    pub fn documented(heading: &str) -> BTreeSet<String> {
        let page = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md"),
        )
        .expect("docs/configuration.md");
        let section = page
            .split("\n## ")
            .find(|section| section.starts_with(heading))
            .unwrap_or_else(|| panic!("no section {heading:?} in docs/configuration.md"));
        section
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .filter_map(|row| row.split('|').next())
            .flat_map(|cell| {
                format!("`{cell}")
                    .split('`')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The section `heading` of `docs/configuration.md` names exactly the
    /// settings of `settings`.
    pub fn page_names_exactly(heading: &str, settings: &[Setting]) {
        let documented = documented(heading);
        let declared = names(settings);
        let missing: Vec<_> = declared.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(&declared).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "docs/configuration.md, section {heading:?}, lacks {missing:?} and names \
             {unknown:?}, which no setting has"
        );
    }

    /// [`help`] shows every setting with its default.
    pub fn help_lists_every_setting(settings: &[Setting]) -> String {
        let text = help(settings);
        for setting in settings {
            let line = format!("  {}  [default: {}]", setting.name, setting.default_text());
            assert!(text.contains(&line), "{line:?} in {text}");
        }
        text
    }
}
