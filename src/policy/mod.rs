//! `upslot policy`: the privacy-policy sentences an operator can truthfully
//! publish, derived from the effective configuration and the live state of
//! the stored files.
//!
//! Data flows one way: [`Facts`] (from a [`crate::config::Config`], once)
//! and [`Live`] (read from [`crate::files::Files`] when asked) go into
//! [`Policy::build`], a pure function, whose sentences and operator notes
//! are rendered as Markdown, or [`providers`] turns the facts into the
//! upload fields of an XMPP Providers provider file.
//!
//! Each promise has one function that decides, from the settings it rests
//! on, whether its sentence is published, changed, or withheld with a note
//! for the operator ([`keeping`]: retention, storage, encryption, limits;
//! [`people`]: erasure, logs, failed attempts, TLS). A setting that weakens
//! a promise changes or removes its sentence; what the configuration
//! cannot prove (a proxy's TLS, an installed XMPP server module, backups)
//! becomes a note, never a bare promise.

mod facts;
mod keeping;
mod people;
pub mod providers;
mod words;

use std::fmt::Write as _;
use std::str::FromStr;

pub use facts::{Attempts, Downloads, Encryption, Facts, Limits, Live, Owners, Source, Storage};

/// What `upslot policy --format` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The sentences to publish and the operator's notes, in Markdown.
    Markdown,
    /// The upload fields of an XMPP Providers provider file, as JSON.
    Providers,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Format, String> {
        match text {
            "markdown" => Ok(Format::Markdown),
            "providers" => Ok(Format::Providers),
            other => Err(format!(
                "{other:?} is not a format: use \"markdown\" or \"providers\""
            )),
        }
    }
}

impl Format {
    /// The path that asks a running server's admin listener for it.
    pub fn admin_path(self) -> &'static str {
        match self {
            Format::Markdown => "/policy",
            Format::Providers => "/policy/providers",
        }
    }

    /// The media type of the rendered text.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Markdown => "text/markdown; charset=utf-8",
            Format::Providers => "application/json",
        }
    }
}

/// Renders the policy of `facts` and `live` in `format`.
pub fn render(facts: &Facts, live: &Live, format: Format) -> String {
    match format {
        Format::Markdown => Policy::build(facts, live).markdown(),
        Format::Providers => providers::json(facts),
    }
}

/// The sentences an operator may publish, and the notes that must not be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Sentences that are true of this configuration and state.
    pub sentences: Vec<String>,
    /// Checks and warnings for the operator, not for publishing.
    pub notes: Vec<String>,
}

impl Policy {
    /// The policy of `facts` and `live`.
    pub fn build(facts: &Facts, live: &Live) -> Policy {
        let mut policy = Policy::default();
        policy.note(source_note(live));
        keeping::retention(facts, live, &mut policy);
        keeping::stored_form(facts, &mut policy);
        keeping::location(facts, &mut policy);
        keeping::encryption(facts, live, &mut policy);
        people::erasure(facts, live, &mut policy);
        people::logs(facts, &mut policy);
        people::failed_attempts(facts, &mut policy);
        keeping::limits(facts, &mut policy);
        people::transport(facts, &mut policy);
        policy
    }

    /// The policy as Markdown: a heading, the sentences to publish as a
    /// list, then the operator's notes in a section marked as not for
    /// publishing.
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "# Privacy of shared files\n\n\
             These statements cover the files you share through our upload service \
             (XMPP HTTP File Upload).\n\n",
        );
        for sentence in &self.sentences {
            let _ = writeln!(out, "- {sentence}");
        }
        out.push_str(
            "\n---\n\n## Operator notes: do not publish\n\n\
             Checks the configuration cannot prove, and sentences withheld until they \
             are true. Remove this section before publishing.\n\n",
        );
        for note in &self.notes {
            let _ = writeln!(out, "- {note}");
        }
        out
    }

    fn publish(&mut self, sentence: impl Into<String>) {
        self.sentences.push(sentence.into());
    }

    fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }
}

fn source_note(live: &Live) -> String {
    let from = match live.source {
        Source::RunningServer => "the running server's configuration and stored files",
        Source::DataDirectory => {
            "this configuration and the data directory (no server answered on the admin listener)"
        }
    };
    format!(
        "Generated by `upslot policy` on {} from {from}. Run it again after every \
         configuration change.",
        words::utc(live.now)
    )
}

#[cfg(test)]
mod tests;
