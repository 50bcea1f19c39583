//! Keeps what docs/ARCHITECTURE.md says of this crate's dependencies true: the
//! sans-I/O invariant is only as good as the list it states, so the list must be
//! the crate's `[dependencies]`, no more and no fewer.

use std::path::Path;

#[test]
fn architecture_md_lists_the_dependencies() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("../../docs/ARCHITECTURE.md"))
        .expect("read docs/ARCHITECTURE.md");
    const PREFIX: &str = "The crate depends only";
    let at = doc.find(PREFIX).expect("the dependency sentence");
    let rest = &doc[at..];
    let sentence = &rest[..rest
        .find(".\n")
        .or_else(|| rest.find(". "))
        .expect("its end")];
    let mut documented: Vec<&str> = sentence.split('`').skip(1).step_by(2).collect();

    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("read Cargo.toml");
    let mut dependencies: Vec<&str> = manifest
        .lines()
        .skip_while(|l| l.trim() != "[dependencies]")
        .skip(1)
        .take_while(|l| !l.starts_with('['))
        .filter_map(|l| l.split(['.', '=']).next())
        .map(str::trim)
        .filter(|name| !name.is_empty() && !name.starts_with('#'))
        .collect();
    assert!(
        dependencies.len() >= 3,
        "no [dependencies] found in {manifest}"
    );
    documented.sort_unstable();
    dependencies.sort_unstable();
    assert_eq!(
        documented, dependencies,
        "docs/ARCHITECTURE.md vs Cargo.toml"
    );
}
