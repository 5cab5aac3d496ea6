//! Reading k8s-pb's source: every prost message, with each field's number,
//! wire type, cardinality and (for messages) the message it holds, resolved
//! to a full module path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use syn::{Fields, GenericArgument, Item, PathArguments, Type as SynType};

/// A scalar or message type as prost declares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PbType {
    String,
    Bytes,
    Bool,
    Int32,
    Int64,
    Double,
    /// A message, by full path (`api::core::v1::PodSpec`).
    Message(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PbCard {
    Optional,
    Repeated,
    /// `btree_map = "string, <value>"`.
    Map,
}

/// One field of a prost message.
#[derive(Clone, Debug)]
pub struct PbField {
    /// The Rust field name without `r#` (`host_ipc`, `type`).
    pub name: String,
    pub tag: u32,
    pub ty: PbType,
    pub card: PbCard,
}

/// A prost message: its full path and fields in declaration order.
#[derive(Clone, Debug)]
pub struct PbMessage {
    pub path: String,
    pub fields: Vec<PbField>,
}

/// Every message of the crate, by full path.
pub type PbMessages = BTreeMap<String, PbMessage>;

/// Where cargo keeps the source of the `k8s-pb` this workspace locks, found
/// through `cargo metadata`; `None` when cargo cannot answer (no cargo, no
/// registry).
pub fn locate() -> Option<(PathBuf, String)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(package_dir())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    let package = metadata["packages"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == "k8s-pb")?;
    let manifest = PathBuf::from(package["manifest_path"].as_str()?);
    let version = package["version"].as_str()?.to_owned();
    Some((manifest.parent()?.join("src"), version))
}

/// Parses every module of k8s-pb's `src` directory.
pub fn read(src: &Path) -> Result<PbMessages, String> {
    let mut files = Vec::new();
    collect_files(src, &mut files)?;
    files.sort();
    let mut messages = PbMessages::new();
    for file in files {
        let relative = file.strip_prefix(src).map_err(|e| e.to_string())?;
        let mut module: Vec<String> = relative
            .parent()
            .into_iter()
            .flat_map(|p| p.components())
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        match relative.file_name().and_then(|n| n.to_str()) {
            Some("mod.rs" | "lib.rs") => {}
            Some(name) => module.push(name.trim_end_matches(".rs").to_owned()),
            None => continue,
        }
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("reading {}: {e}", file.display()))?;
        let parsed =
            syn::parse_file(&text).map_err(|e| format!("parsing {}: {e}", file.display()))?;
        for item in parsed.items {
            let Item::Struct(item) = item else { continue };
            if !derives_message(&item.attrs) {
                continue;
            }
            let path = join(&module, &item.ident.to_string());
            let mut fields = Vec::new();
            if let Fields::Named(named) = &item.fields {
                for field in &named.named {
                    let name = field.ident.as_ref().map(unraw).unwrap_or_default();
                    let attr = field
                        .attrs
                        .iter()
                        .find(|a| a.path().is_ident("prost"))
                        .ok_or_else(|| format!("{path}.{name}: no #[prost] attribute"))?;
                    fields.push(
                        read_field(attr, &field.ty, &module, name.clone())
                            .map_err(|e| format!("{path}.{name}: {e}"))?,
                    );
                }
            }
            messages.insert(path.clone(), PbMessage { path, fields });
        }
    }
    Ok(messages)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

fn unraw(ident: &syn::Ident) -> String {
    ident.to_string().trim_start_matches("r#").to_owned()
}

fn join(module: &[String], name: &str) -> String {
    let mut parts = module.to_vec();
    parts.push(name.to_owned());
    parts.join("::")
}

fn derives_message(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("derive") && {
            let tokens = a.meta.require_list().map(|l| l.tokens.to_string());
            tokens.is_ok_and(|t| t.contains("prost :: Message"))
        }
    })
}

/// Reads `#[prost(<type>, optional|repeated, tag = "N")]` and its variants
/// (`bytes = "vec"`, `btree_map = "string, message"`, `packed = "false"`,
/// `boxed`).
fn read_field(
    attr: &syn::Attribute,
    ty: &SynType,
    module: &[String],
    name: String,
) -> Result<PbField, String> {
    let mut scalar: Option<String> = None;
    let mut map_value: Option<String> = None;
    let mut card = None;
    let mut tag = None;
    attr.parse_nested_meta(|meta| {
        let key = meta
            .path
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_default();
        match key.as_str() {
            "optional" => card = Some(PbCard::Optional),
            "repeated" => card = Some(PbCard::Repeated),
            "boxed" => {}
            "packed" => {
                meta.value()?.parse::<syn::LitStr>()?;
            }
            "tag" => {
                let lit: syn::LitStr = meta.value()?.parse()?;
                tag = Some(lit.value().parse::<u32>().map_err(|e| meta.error(e))?);
            }
            "bytes" => {
                let lit: syn::LitStr = meta.value()?.parse()?;
                if lit.value() != "vec" {
                    return Err(meta.error("bytes other than vec"));
                }
                scalar = Some("bytes".into());
            }
            "btree_map" | "map" => {
                let lit: syn::LitStr = meta.value()?.parse()?;
                let value = lit.value();
                let (k, v) = value
                    .split_once(',')
                    .ok_or_else(|| meta.error("map without a value type"))?;
                if k.trim() != "string" {
                    return Err(meta.error("map keys other than string"));
                }
                map_value = Some(v.trim().to_owned());
                card = Some(PbCard::Map);
            }
            "string" | "bool" | "int32" | "int64" | "double" | "message" => {
                scalar = Some(key);
            }
            other => return Err(meta.error(format!("unexpected prost attribute {other}"))),
        }
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    let kind = map_value
        .or(scalar)
        .ok_or("no type in the prost attribute")?;
    let ty = match kind.as_str() {
        "string" => PbType::String,
        "bytes" => PbType::Bytes,
        "bool" => PbType::Bool,
        "int32" => PbType::Int32,
        "int64" => PbType::Int64,
        "double" => PbType::Double,
        "message" => PbType::Message(message_path(ty, module)?),
        other => return Err(format!("unsupported type {other}")),
    };
    Ok(PbField {
        name,
        tag: tag.ok_or("no tag")?,
        ty,
        card: card.ok_or("neither optional, repeated nor a map")?,
    })
}

/// The full path of the message a field holds: the innermost type of
/// `Option<Box<T>>`, `Vec<T>` or `BTreeMap<String, T>`, with `super::`
/// resolved against the module the field is declared in.
fn message_path(ty: &SynType, module: &[String]) -> Result<String, String> {
    let SynType::Path(type_path) = ty else {
        return Err("a message field whose type is not a path".into());
    };
    let last = type_path.path.segments.last().ok_or("an empty type path")?;
    let wrapper = last.ident.to_string();
    if matches!(wrapper.as_str(), "Option" | "Box" | "Vec" | "BTreeMap") {
        let PathArguments::AngleBracketed(args) = &last.arguments else {
            return Err(format!("{wrapper} without arguments"));
        };
        let inner = args
            .args
            .iter()
            .filter_map(|a| match a {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .last()
            .ok_or("a wrapper without a type")?;
        return message_path(inner, module);
    }
    let mut resolved: Vec<String> = module.to_vec();
    let segments: Vec<String> = type_path
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    let (name, prefix) = segments.split_last().ok_or("an empty type path")?;
    for segment in prefix {
        match segment.as_str() {
            "super" => {
                resolved.pop().ok_or("super:: above the crate root")?;
            }
            "crate" => resolved.clear(),
            other => resolved.push(other.to_owned()),
        }
    }
    Ok(join(&resolved, name))
}

/// The package's directory: the one the test runner names (cargo and nextest set
/// `CARGO_MANIFEST_DIR` when they run a test), else the one it was built from. A build
/// shared by checkouts at other paths (one `CARGO_TARGET_DIR`) may have been made in
/// another checkout.
pub fn package_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from)
}
