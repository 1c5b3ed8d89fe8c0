//! The `anchorgate` command line: `serve` runs the gateway, `check-config` prints its configuration,
//! and one-shot commands make keys, validate files, verify and erase in the ledger, import consents
//! and export decision records. Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.

mod audit;
mod check;
mod common;
mod consent;
mod demo;
mod help;
mod keys;
mod ledger;
mod progress;
mod serve;
mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// mimalloc: validation allocates many small short-lived JSON values; with glibc malloc over half of a
// Patient's validation time went to its free lists (perf), mimalloc cut that time by 19% (criterion,
// `validate/synthea_patient_parse_and_validate`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Anchorgate: a validating, consent-enforcing, ledger-anchoring FHIR R4 gateway in front of an EHR.
///
/// It proxies the EHR's FHIR API under its own public base. Every FHIR request needs a bearer token
/// from a trusted issuer; patient consent and organisation policy decide what leaves; every write is
/// validated against base R4 and profiles; every resource version and every decision is anchored in a
/// signed Merkle ledger and recorded for compliance review. Every failure is a FHIR OperationOutcome.
#[derive(Debug, Parser)]
#[command(name = "anchorgate", version, propagate_version = true, after_help = help::TOP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the test EHR, a gateway in front of it with patients and consents loaded, and print
    /// ready-to-paste commands that show every promise of Anchorgate. Ctrl-C stops everything.
    Demo(demo::DemoArgs),
    /// Run the gateway: listen, proxy the upstream FHIR API, serve /healthz, /readyz, /metrics,
    /// /ledger and /audit.
    ///
    /// Stops gracefully on SIGTERM or Ctrl-C: no new connections, in-flight requests drained, a last
    /// checkpoint signed. Exits 0 when stopped, 1 when it cannot listen, 2 on a configuration error
    /// (found before the port is bound).
    #[command(after_help = help::SERVE)]
    Serve(common::ServeArgs),
    /// Load and validate the configuration `serve` would run with, and print it as TOML with its
    /// warnings (0 valid, 2 invalid).
    #[command(after_help = help::CHECK_CONFIG)]
    CheckConfig(common::ServeArgs),
    /// Make a signing key, written to --out with mode 0600 (an existing file is never overwritten).
    ///
    /// --kind ledger (default): an Ed25519 key for the ledger; prints the verifier key in signed-note
    /// form (name+keyid+base64). --kind issuer (TEST/DEV ONLY): a token issuer key (PKCS#8 PEM) for
    /// `anchorgate token`; prints its public JWKS (and writes it to --jwks-out).
    #[command(after_help = help::KEYGEN)]
    Keygen(keys::KeygenArgs),
    /// TEST/DEV ONLY: mint a signed access token (JWT) with an issuer key and print it.
    ///
    /// Adds iat (now), exp (now + --ttl) and a random jti unless the claims give them. The kid is the
    /// key's RFC 7638 thumbprint unless --kid names one, matching `keygen --kind issuer`'s JWKS.
    #[command(after_help = help::TOKEN)]
    Token(keys::TokenArgs),
    /// Validate FHIR resource files (JSON, or XML by the `.xml` extension) against base R4, the known
    /// profiles in their meta.profile (R4 core, IPS 2.0.0, and any loaded), and any --profile.
    ///
    /// Prints one JSON line per file: {"file", "valid", "outcome": OperationOutcome}. Exits 0 if all
    /// are valid, 1 if any is not, 2 on a usage error (a file that cannot be read or loaded, an unknown
    /// profile).
    #[command(after_help = help::VALIDATE)]
    Validate(validate::ValidateArgs),
    /// The ledger: verify a log, erase a resource's salts.
    #[command(subcommand)]
    Ledger(ledger::LedgerCommand),
    /// Consents: import those already in the upstream.
    #[command(subcommand)]
    Consent(consent::ConsentCommand),
    /// Decision records: export them for compliance review.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands that read a configuration start the logs at its level once it is loaded.
    if matches!(
        cli.command,
        Command::Demo(_)
            | Command::Validate(_)
            | Command::Keygen(_)
            | Command::Token(_)
            | Command::Ledger(ledger::LedgerCommand::Verify(_))
    ) {
        common::init_logging_from_env();
    }
    match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Serve(args) => serve::serve(args),
        Command::CheckConfig(args) => check::check_config(args),
        Command::Validate(args) => validate::validate_files(&args),
        Command::Keygen(args) if args.kind == keys::KeyKind::Issuer => keys::issuer_keygen(&args),
        Command::Keygen(args) => keys::keygen(&args),
        Command::Token(args) => keys::mint_token(&args),
        Command::Ledger(ledger::LedgerCommand::Verify(args)) => ledger::ledger_verify(&args),
        Command::Ledger(ledger::LedgerCommand::Erase(args)) => ledger::ledger_erase(args),
        Command::Consent(consent::ConsentCommand::Import(args)) => consent::consent_import(args),
        Command::Audit(audit::AuditCommand::Export(args)) => audit::audit_export(args),
    }
}
