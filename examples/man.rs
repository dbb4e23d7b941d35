//! Writes the manual pages of `upslot` from its clap definition:
//! `upslot.1` and one `upslot-<command>.1` per command, into the directory
//! given as the only argument. The Debian package build
//! (`deploy/debian/build.sh`) runs it:
//!
//! ```sh
//! cargo run --example man -- target/man
//! ```

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use clap::CommandFactory;
use clap_mangen::Man;

/// What the generated sections cannot know: where things live, the
/// environment, exit codes, and the other pages.
const MAIN_SECTIONS: &str = r#".SH FILES
.TP
\fI/etc/upslot/upslot.toml\fR
The configuration (a conffile of the Debian package). Every key not set
takes the default shown in \fI/usr/share/doc/upslot/default.toml\fR.
.TP
\fI/etc/upslot/secret\fR
The secret shared with the XMPP server (generated at install, readable by
root and the upslot group only).
.TP
\fI/var/lib/upslot\fR
Uploaded files (encrypted at rest), the index and the encryption keys
(storage.path; mode 0700, owned by the upslot user). Purging the package
deletes it.
.TP
\fI/usr/lib/systemd/system/upslot.service\fR
The hardened systemd unit. The package never starts it by itself:
\fBsystemctl enable \-\-now upslot\fR.
.SH ENVIRONMENT
.TP
\fBUPSLOT_CONFIG\fR
The config file when \fB\-\-config\fR is not given.
.TP
\fBUPSLOT_\fR\fISECTION\fR\fB__\fR\fIKEY\fR
Overrides one key of the config file, e.g.
\fBUPSLOT_SERVER__LISTEN=0.0.0.0:5050\fR.
.TP
\fBRUST_LOG\fR
Log filter (default \fBinfo\fR). Logs never hold client addresses, file
names, tokens or JIDs unless privacy.log_client_ip says otherwise.
.SH EXIT STATUS
0 on success; 64 for an invalid configuration (restarting will not help);
1 for any other failure.
.SH SEE ALSO
"#;

fn main() -> io::Result<()> {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: cargo run --example man -- DIRECTORY");
        std::process::exit(2);
    };
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir)?;
    // `upslot help` exists, but has no page of its own.
    let cli = upslot::cli::Cli::command().disable_help_subcommand(true);
    let commands: Vec<clap::Command> = cli.get_subcommands().cloned().collect();

    let mut page = BufWriter::new(File::create(dir.join("upslot.1"))?);
    Man::new(cli.clone()).render(&mut page)?;
    page.write_all(MAIN_SECTIONS.as_bytes())?;
    let see_also: Vec<String> = commands
        .iter()
        .map(|command| format!("\\fBupslot\\-{}\\fR(1)", command.get_name()))
        .collect();
    writeln!(page, "{}", see_also.join(",\n"))?;
    page.flush()?;

    for command in commands {
        // clap names are `&'static str` (without its "string" feature);
        // this program writes a handful of pages and exits.
        let name: &'static str = format!("upslot-{}", command.get_name()).leak();
        let bin_name = format!("upslot {}", command.get_name());
        let command = command
            .name(name)
            .bin_name(bin_name)
            .version(env!("CARGO_PKG_VERSION"));
        let mut page = BufWriter::new(File::create(dir.join(format!("{name}.1")))?);
        Man::new(command).render(&mut page)?;
        writeln!(page, ".SH SEE ALSO\n\\fBupslot\\fR(1)")?;
        page.flush()?;
    }
    Ok(())
}
