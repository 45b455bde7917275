// Rebuild when a built-in template (templates/, embedded by include_dir in
// daemon/hearth/src/templates.rs) is added, removed or changed.
fn main() {
    println!("cargo:rerun-if-changed=templates");
}
