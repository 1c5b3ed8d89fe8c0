//! `anchorgate keygen` and `anchorgate token`: signing keys, and test-only access tokens.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    /// What the key signs: the ledger's checkpoints, or (test/dev only) access tokens.
    #[arg(long, value_enum, default_value_t = KeyKind::Ledger)]
    pub(crate) kind: KeyKind,
    /// The key name; for the ledger, the log's origin line (e.g. fhir.example.org/ledger). Required
    /// for ledger keys.
    #[arg(long)]
    pub(crate) origin: Option<String>,
    /// Where to write the signing key; an existing file is never overwritten.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Issuer keys: ES256, ES384 or EdDSA.
    #[arg(long, default_value = "ES256")]
    pub(crate) alg: String,
    /// Issuer keys: the JWKS kid (default: the key's RFC 7638 thumbprint).
    #[arg(long)]
    pub(crate) kid: Option<String>,
    /// Issuer keys: also write the public JWKS to this file (never overwritten).
    #[arg(long)]
    pub(crate) jwks_out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum KeyKind {
    /// The ledger's Ed25519 checkpoint key.
    Ledger,
    /// A token issuer key, for development and tests.
    Issuer,
}

#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    /// The issuer's private key: PKCS#8 PEM from `keygen --kind issuer`, or an RSA PEM (PKCS#8/PKCS#1).
    #[arg(long)]
    pub(crate) issuer_key: PathBuf,
    /// The claims, a JSON object, e.g. '{"iss":"https://idp.test","aud":"http://127.0.0.1:8080/fhir","sub":"Practitioner/prac-a","scope":"user/*.rs"}'.
    #[arg(long)]
    pub(crate) claims: String,
    /// The header kid (default: the key's RFC 7638 thumbprint).
    #[arg(long)]
    pub(crate) kid: Option<String>,
    /// Lifetime in seconds, for the exp added when the claims have none.
    #[arg(long, default_value_t = 300)]
    pub(crate) ttl: u64,
    /// The algorithm, for an RSA key: RS256 (default) or RS384. Other keys fix their own.
    #[arg(long)]
    pub(crate) alg: Option<String>,
}

pub(crate) fn keygen(args: &KeygenArgs) -> ExitCode {
    let Some(origin) = args.origin.as_deref() else {
        eprintln!("anchorgate keygen: --origin is required for a ledger key");
        return ExitCode::from(2);
    };
    let signer = match anchorgate::ledger::note::NoteSigner::generate(origin) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("anchorgate keygen: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = write_new(&args.out, &format!("{}\n", signer.encode()), 0o600) {
        eprintln!("anchorgate keygen: {}: {e}", args.out.display());
        return ExitCode::from(2);
    }
    println!("{}", signer.verifier().encode());
    ExitCode::SUCCESS
}

/// Writes a new file with `mode`; an existing file is never overwritten.
pub(crate) fn write_new(path: &std::path::Path, contents: &str, mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

/// `anchorgate keygen --kind issuer`: a TEST/DEV token issuer key and its public JWKS.
pub(crate) fn issuer_keygen(args: &KeygenArgs) -> ExitCode {
    use anchorgate::identity::{keys::IssuerKey, SigAlg};
    let Some(alg) = SigAlg::from_name(&args.alg) else {
        eprintln!(
            "anchorgate keygen: --alg {}: expected ES256, ES384 or EdDSA",
            args.alg
        );
        return ExitCode::from(2);
    };
    let (key, pem) = match IssuerKey::generate(alg) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("anchorgate keygen: {e}");
            return ExitCode::from(2);
        }
    };
    let kid = args.kid.clone().unwrap_or_else(|| key.thumbprint());
    let jwks = format!("{:#}\n", key.jwks(&kid));
    if let Err(e) = write_new(&args.out, &pem, 0o600) {
        eprintln!("anchorgate keygen: {}: {e}", args.out.display());
        return ExitCode::from(2);
    }
    if let Some(path) = &args.jwks_out {
        if let Err(e) = write_new(path, &jwks, 0o644) {
            eprintln!("anchorgate keygen: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    print!("{jwks}");
    ExitCode::SUCCESS
}

/// `anchorgate token`: a TEST/DEV access token signed with an issuer key.
pub(crate) fn mint_token(args: &TokenArgs) -> ExitCode {
    use anchorgate::identity::{keys, SigAlg};
    let fail = |msg: String| {
        eprintln!("anchorgate token: {msg}");
        ExitCode::from(2)
    };
    let alg = match args.alg.as_deref().map(|a| (a, SigAlg::from_name(a))) {
        None => None,
        Some((_, Some(alg))) => Some(alg),
        Some((a, None)) => {
            return fail(format!(
                "--alg {a}: expected ES256, ES384, RS256, RS384 or EdDSA"
            ))
        }
    };
    let pem = match std::fs::read(&args.issuer_key) {
        Ok(p) => p,
        Err(e) => return fail(format!("{}: {e}", args.issuer_key.display())),
    };
    let key = match keys::IssuerKey::from_pem(&pem, alg) {
        Ok(k) => k,
        Err(e) => return fail(format!("{}: {e}", args.issuer_key.display())),
    };
    let claims = match serde_json::from_str(&args.claims) {
        Ok(c) => c,
        Err(e) => return fail(format!("--claims is not JSON: {e}")),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match keys::mint(&key, args.kid.as_deref(), claims, args.ttl, now) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e.to_string()),
    }
}
