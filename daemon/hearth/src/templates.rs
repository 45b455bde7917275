//! The built-in function templates: the directories under `templates/` in
//! the repository (`<runtime>-<kind>/`, each with a `template.toml`),
//! embedded in the binary at build time so `hearth new` works without a
//! daemon. The daemon lists and serves them beside the saved ones
//! (`gateway/api/templates.rs`); their format is `hearth_api::templates`.

use std::sync::OnceLock;

use include_dir::{include_dir, Dir};

use hearth_api::bundle::{Bundle, BundleFile};
use hearth_api::manifest::DEFAULT_APP;
use hearth_api::templates::{self, TemplateSpec, TEMPLATE_FILE};
use hearth_api::{TemplateDetail, TemplateInfo};

static DIR: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// One built-in template.
#[derive(Debug, Clone)]
pub struct Builtin {
    pub info: TemplateInfo,
    pub spec: TemplateSpec,
    /// Its files (template.toml left out), placeholders unreplaced, by path.
    pub files: Vec<BundleFile>,
}

impl Builtin {
    pub fn detail(&self) -> TemplateDetail {
        TemplateDetail {
            info: self.info.clone(),
            variables: self.spec.variables.clone(),
            files: self.files.clone(),
        }
    }
}

/// Every built-in template, by name. One that cannot be read (a mistake in
/// the repository, caught by the tests below) is left out with a warning.
pub fn builtins() -> &'static [Builtin] {
    static ALL: OnceLock<Vec<Builtin>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut all: Vec<Builtin> = DIR
            .dirs()
            .filter_map(|dir| match load(dir) {
                Ok(b) => Some(b),
                Err(e) => {
                    tracing::warn!(template = %dir.path().display(), "built-in template left out: {e}");
                    None
                }
            })
            .collect();
        all.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        all
    })
}

pub fn builtin(name: &str) -> Option<&'static Builtin> {
    builtins().iter().find(|b| b.info.name == name)
}

fn load(dir: &Dir<'static>) -> Result<Builtin, String> {
    let name = dir
        .path()
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("its directory name is not UTF-8")?
        .to_owned();
    templates::validate_template_name(&name).map_err(|e| e.to_string())?;
    let mut files = Vec::new();
    let mut spec = None;
    collect(dir, dir, &mut files, &mut spec)?;
    let spec = spec.ok_or_else(|| format!("{name} has no {TEMPLATE_FILE}"))?;
    let spec = templates::parse_spec(&spec).map_err(|e| format!("{name}/{e}"))?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    // Its runtime and type are those of what it makes with its defaults.
    let values = templates::values(&name, &spec.variables, &[], &name, DEFAULT_APP)
        .map_err(|e| e.to_string())?;
    let manifest = Bundle {
        files: templates::render(&files, &values),
    }
    .validate()
    .map_err(|e| format!("{name} does not make a deployable function: {e}"))?;
    Ok(Builtin {
        info: TemplateInfo {
            name,
            description: spec.description.clone(),
            runtime: manifest.runtime.as_str().to_owned(),
            kind: manifest.kind.as_str().to_owned(),
            builtin: true,
            from: None,
            app: None,
            created_at: None,
            created_by: None,
        },
        spec,
        files,
    })
}

fn collect(
    root: &Dir<'static>,
    dir: &Dir<'static>,
    files: &mut Vec<BundleFile>,
    spec: &mut Option<String>,
) -> Result<(), String> {
    for file in dir.files().filter(|f| !skipped(f.path())) {
        let path = file
            .path()
            .strip_prefix(root.path())
            .map_err(|_| format!("{} is outside its template", file.path().display()))?
            .to_str()
            .ok_or_else(|| format!("{} is not a UTF-8 path", file.path().display()))?
            .to_owned();
        if path == TEMPLATE_FILE {
            let text = file
                .contents_utf8()
                .ok_or_else(|| format!("{TEMPLATE_FILE} is not UTF-8"))?;
            *spec = Some(text.to_owned());
            continue;
        }
        files.push(BundleFile {
            path,
            data: file.contents().to_vec(),
            executable: false,
        });
    }
    for sub in dir.dirs().filter(|d| !skipped(d.path())) {
        collect(root, sub, files, spec)?;
    }
    Ok(())
}

/// What running a template in place may leave beside its files (caches,
/// installed packages, editors' files): never part of it.
fn skipped(path: &std::path::Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.') || n == "__pycache__" || n == "node_modules")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_runtime_has_the_four_kinds_and_all_load() {
        assert_eq!(
            builtins().len(),
            DIR.dirs().count(),
            "a built-in template did not load (run with RUST_LOG to see why)"
        );
        for runtime in ["python", "node", "lua"] {
            for (kind, ty) in [
                ("hello", "function"),
                ("datasource", "datasource"),
                ("field", "field"),
                ("errors", "function"),
            ] {
                let name = format!("{runtime}-{kind}");
                let b = builtin(&name).unwrap_or_else(|| panic!("no built-in {name}"));
                assert_eq!(
                    (b.info.runtime.as_str(), b.info.kind.as_str()),
                    (runtime, ty)
                );
                assert!(!b.info.description.is_empty());
                assert!(
                    b.files.iter().all(|f| f.path != TEMPLATE_FILE),
                    "{name} ships its template.toml"
                );
            }
        }
        let field = builtin("python-field").expect("python-field");
        assert_eq!(field.spec.variables[0].name, "datasource");
        assert_eq!(field.spec.variables[0].default, "programs");
        let ds = builtin("lua-datasource").expect("lua-datasource");
        assert!(ds.files.iter().any(|f| f.path == "data/programs.json"));
        assert!(ds.files.iter().any(|f| f.path == "lib/json.lua"));
    }

    #[test]
    fn built_ins_render_with_given_values() {
        let field = builtin("node-field").expect("node-field");
        let values = templates::values(
            "node-field",
            &field.spec.variables,
            &["datasource=shows".into()],
            "row",
            "site",
        )
        .expect("values");
        let bundle = Bundle {
            files: templates::render(&field.files, &values),
        };
        let manifest = bundle.validate().expect("deployable");
        assert_eq!(
            (manifest.name.as_str(), manifest.app.as_str()),
            ("row", "site")
        );
        assert_eq!(manifest.calls, ["shows"]);
        let code = bundle.file("main.js").expect("main.js");
        let code = std::str::from_utf8(&code.data).expect("utf8");
        assert!(code.contains("const SOURCE = 'shows';"), "{code}");
        assert!(!code.contains("{{"), "{code}");
    }
}
