//! `GET /docs/{name}`: a function's interface document as one HTML page
//! with a call form generated from its input schema. Everything is in the
//! page (style and script inline, no fonts, no CDN): it works with no
//! internet access. The page is made from the function's OpenAPI document,
//! like `hearth docs`.

use std::fmt::Write as _;

use serde_json::Value;

use super::text::Parts;
use super::{fields, Field};

/// The page's Content-Security-Policy: nothing but itself and calls to its
/// own origin.
pub const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Text made safe inside HTML elements and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2330;background:#f7f7f9}
main{max-width:60rem;margin:0 auto;padding:1rem 1.25rem 3rem}
h1{font-size:1.6rem;margin:.5rem 0}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
code,pre,textarea{font:13px/1.4 ui-monospace,monospace}
pre{background:#fff;border:1px solid #ddd;padding:.6rem;overflow:auto;max-height:28rem}
table{border-collapse:collapse;width:100%;background:#fff}td,th{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
.tag{display:inline-block;background:#e6ecf5;border-radius:.3rem;padding:0 .4rem;margin-right:.3rem}
form.call{background:#fff;border:1px solid #ddd;padding:1rem}
label{display:block;margin:.4rem 0}label span{display:inline-block;min-width:12rem;font-family:ui-monospace,monospace}
input,select{font:inherit;padding:.2rem .3rem}input[type=text],input[type=number],input[type=password]{width:min(24rem,100%)}
textarea{width:100%;min-height:7rem;box-sizing:border-box}
button{font:inherit;padding:.35rem 1rem;margin-top:.6rem;cursor:pointer}
.req{color:#b3261e}.muted{color:#667}
#status.ok{color:#0a6b2d}#status.err{color:#b3261e}
@media (max-width:40rem){label span{display:block}}
"#;

/// The script of the call form: fields → event JSON, and the call itself.
const SCRIPT: &str = r#"
(function(){
  const form=document.getElementById('call');
  const event=document.getElementById('event');
  const token=document.getElementById('token');
  const m=document.cookie.match(/(?:^|; )hearth_token=([^;]*)/);
  if(m&&!token.value){token.value=decodeURIComponent(m[1]);}
  function set(obj,pointer,value){
    const parts=pointer.split('/').slice(1).map(p=>p.replace(/~1/g,'/').replace(/~0/g,'~'));
    let o=obj;
    for(let i=0;i<parts.length-1;i++){if(typeof o[parts[i]]!=='object'||o[parts[i]]===null){o[parts[i]]={};}o=o[parts[i]];}
    o[parts[parts.length-1]]=value;
  }
  function build(){
    let obj;
    try{obj=JSON.parse(event.value||'{}');}catch(e){obj={};}
    if(typeof obj!=='object'||obj===null||Array.isArray(obj)){obj={};}
    for(const el of form.querySelectorAll('[data-pointer]')){
      const t=el.dataset.type;let v;
      if(t==='boolean'){v=el.checked;}
      else if(el.value===''){continue;}
      else if(t==='integer'){v=parseInt(el.value,10);}
      else if(t==='number'){v=parseFloat(el.value);}
      else if(t==='json'){try{v=JSON.parse(el.value);}catch(e){v=el.value;}}
      else{v=el.value;}
      set(obj,el.dataset.pointer,v);
    }
    event.value=JSON.stringify(obj,null,2);
  }
  for(const el of form.querySelectorAll('[data-pointer]')){el.addEventListener('input',build);el.addEventListener('change',build);}
  form.addEventListener('submit',async function(e){
    e.preventDefault();
    const status=document.getElementById('status');const out=document.getElementById('result');
    status.textContent='calling…';status.className='';
    const headers={'Content-Type':'application/json'};
    if(token.value){headers['Authorization']='Bearer '+token.value;
      document.cookie='hearth_token='+encodeURIComponent(token.value)+'; Path=/docs; SameSite=Strict';}
    const started=performance.now();
    try{
      const r=await fetch(form.dataset.target,{method:'POST',headers:headers,body:event.value||'{}'});
      const text=await r.text();let shown=text;
      try{shown=JSON.stringify(JSON.parse(text),null,2);}catch(e){}
      const ms=(performance.now()-started).toFixed(1);
      status.textContent=r.status+' '+r.statusText+' in '+ms+' ms · version '+(r.headers.get('x-hearth-version')||'?')+' · request '+(r.headers.get('x-request-id')||'?')+' · '+(r.headers.get('server-timing')||'');
      status.className=r.ok?'ok':'err';out.textContent=shown;
    }catch(err){status.textContent='the call failed: '+err;status.className='err';}
  });
})();
"#;

/// The form control of one field (None: not a leaf the form fills).
fn control(f: &Field) -> Option<String> {
    if f.pointer.contains("/*") || f.ty == "object" {
        return None;
    }
    let pointer = escape(&f.pointer);
    let required = if f.required { " required" } else { "" };
    let schema = &f.schema;
    let attr = |key: &str, name: &str| {
        schema
            .get(key)
            .map(|v| match v {
                Value::String(s) => format!(" {name}=\"{}\"", escape(s)),
                other => format!(" {name}=\"{}\"", escape(&other.to_string())),
            })
            .unwrap_or_default()
    };
    let default = schema
        .get("default")
        .or_else(|| schema.get("examples").and_then(|e| e.get(0)));
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let mut html = format!("<select data-pointer=\"{pointer}\" data-type=\"json\"{required}><option value=\"\"></option>");
        for v in values {
            let text = v.to_string();
            let _ = write!(html, "<option value=\"{0}\">{0}</option>", escape(&text));
        }
        html.push_str("</select>");
        return Some(html);
    }
    let value = |v: Option<&Value>| match v {
        Some(Value::String(s)) => format!(" value=\"{}\"", escape(s)),
        Some(Value::Number(n)) => format!(" value=\"{n}\""),
        _ => String::new(),
    };
    Some(match f.ty.as_str() {
        "string" => format!(
            "<input type=\"text\" data-pointer=\"{pointer}\" data-type=\"string\"{required}{}{}{}{}>",
            attr("minLength", "minlength"),
            attr("maxLength", "maxlength"),
            attr("pattern", "pattern"),
            value(default)
        ),
        "integer" | "number" => format!(
            "<input type=\"number\" data-pointer=\"{pointer}\" data-type=\"{}\"{required}{}{}{}{}>",
            f.ty,
            attr("minimum", "min"),
            attr("maximum", "max"),
            if f.ty == "integer" { " step=\"1\"" } else { " step=\"any\"" },
            value(default)
        ),
        "boolean" => {
            let checked = if default == Some(&Value::Bool(true)) { " checked" } else { "" };
            format!("<input type=\"checkbox\" data-pointer=\"{pointer}\" data-type=\"boolean\"{checked}>")
        }
        _ => format!(
            "<textarea data-pointer=\"{pointer}\" data-type=\"json\" placeholder=\"JSON\"{required}>{}</textarea>",
            default.map(|d| escape(&d.to_string())).unwrap_or_default()
        ),
    })
}

fn field_table(out: &mut String, fields: &[Field]) {
    out.push_str("<table><tr><th>field</th><th>type</th><th>required</th><th>rules</th><th>description</th></tr>");
    for f in fields {
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&f.pointer),
            escape(&f.ty),
            if f.required {
                "<span class=\"req\">yes</span>"
            } else {
                "no"
            },
            escape(&f.rules.join("; ")),
            escape(&f.description)
        );
    }
    out.push_str("</table>");
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        escape(title)
    )
}

/// The page of a function, from its OpenAPI document.
pub fn render(doc: &Value) -> Option<String> {
    let p = Parts::of(doc)?;
    let h = p.hearth;
    let name = escape(p.name);
    let str_of = |v: &Value| escape(v.as_str().unwrap_or_default());
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>{name}</h1><p><span class=\"tag\">{}</span><span class=\"tag\">{}</span><span class=\"tag\">version {}</span><span class=\"tag\">app {}</span>{}</p>",
        str_of(&h["type"]),
        str_of(&h["runtime"]),
        h["version"],
        str_of(&h["app"]),
        if h["category"].as_str().is_some_and(|c| !c.is_empty()) {
            format!("<span class=\"tag\">{}</span>", str_of(&h["category"]))
        } else {
            String::new()
        }
    );
    let _ = write!(b, "<p>{}</p>", str_of(&doc["info"]["description"]));

    // The call form.
    let input_fields = if Parts::declares(p.input) {
        fields(p.input)
    } else {
        Vec::new()
    };
    let _ = write!(
        b,
        "<h2>Call</h2><form class=\"call\" id=\"call\" data-target=\"{}\"><label><span>token</span><input type=\"password\" id=\"token\" autocomplete=\"off\" placeholder=\"{}\"></label>",
        str_of(&h["call"]),
        if h["open"] == true { "not needed: its application is open" } else { "a token with scope invoke" }
    );
    for f in &input_fields {
        if let Some(control) = control(f) {
            let _ = write!(
                b,
                "<label><span>{}{}</span>{control} <small class=\"muted\">{}</small></label>",
                escape(&f.pointer),
                if f.required {
                    "<span class=\"req\">*</span>"
                } else {
                    ""
                },
                escape(&f.description)
            );
        }
    }
    let example = serde_json::to_string_pretty(p.example).unwrap_or_else(|_| "{}".into());
    let _ = write!(
        b,
        "<label><span>event (JSON)</span></label><textarea id=\"event\" name=\"event\" spellcheck=\"false\">{}</textarea><button type=\"submit\">Call {name}</button><p id=\"status\" class=\"muted\"></p><pre id=\"result\"></pre></form>",
        escape(&example)
    );

    b.push_str("<h2>Input</h2>");
    if Parts::declares(p.input) {
        if !input_fields.is_empty() {
            field_table(&mut b, &input_fields);
        }
        let _ = write!(
            b,
            "<p>An event that does not match gets 400 <code>invalid_input</code>; the function does not run.</p><pre>{}</pre>",
            escape(&serde_json::to_string_pretty(p.input).unwrap_or_default())
        );
    } else {
        b.push_str("<p>Any JSON value (no input schema is declared).</p>");
    }
    b.push_str("<h2>Output</h2>");
    if Parts::declares(p.output) {
        let out_fields = fields(p.output);
        if !out_fields.is_empty() {
            field_table(&mut b, &out_fields);
        }
        let _ = write!(
            b,
            "<p>Output validation: {}.</p><pre>{}</pre>",
            str_of(&h["output_validation"]),
            escape(&serde_json::to_string_pretty(p.output).unwrap_or_default())
        );
    } else {
        b.push_str("<p>Not declared.</p>");
    }
    b.push_str("<h2>Errors</h2><table><tr><th>code</th><th>status</th><th>retryable</th><th>meaning</th></tr>");
    if let Some(errors) = p.operation["x-hearth-errors"].as_object() {
        for (code, e) in errors {
            let _ = write!(
                b,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(code),
                e["status"],
                if e["retryable"] == true { "yes" } else { "no" },
                str_of(&e["message"])
            );
        }
    }
    if Parts::declares(p.input) {
        b.push_str("<tr><td><code>invalid_input</code></td><td>400</td><td>no</td><td>the event does not match the input schema</td></tr>");
    }
    b.push_str("<tr><td colspan=\"4\" class=\"muted\">and hearth's own codes: timeout, queue_full, function_error, …</td></tr></table>");
    let l = &h["limits"];
    let _ = write!(
        b,
        "<h2>Limits</h2><p>Timeout {} ms · memory {} MB · request up to {} KiB · response up to {} KiB</p>",
        l["timeout_ms"], l["memory_mb"], l["max_request_kb"], l["max_response_kb"]
    );
    let _ = write!(
        b,
        "<p class=\"muted\">OpenAPI 3.1: <code>GET /api/v1/functions/{name}/openapi.json</code> · text: <code>hearth docs {name}</code></p><script>{SCRIPT}</script>"
    );
    Some(page(&format!("{} — hearth", p.name), &b))
}

/// The page asking for a token (the docs need one with scope read).
pub fn sign_in(name: &str, problem: &str) -> String {
    let body = format!(
        "<h1>{}</h1><p>{}</p><form id=\"signin\"><label><span>token</span><input type=\"password\" id=\"token\" autocomplete=\"off\" placeholder=\"a token with scope read\" required></label><button type=\"submit\">Show the docs</button></form><p class=\"muted\">Make one with <code>hearth token create docs --scope read</code>. It is kept in a cookie of this page only (Path=/docs, SameSite=Strict).</p><script>document.getElementById('signin').addEventListener('submit',function(e){{e.preventDefault();document.cookie='hearth_token='+encodeURIComponent(document.getElementById('token').value)+'; Path=/docs; SameSite=Strict';location.reload();}});</script>",
        escape(name),
        escape(problem)
    );
    page(&format!("{name} — hearth"), &body)
}

/// A page for an error (the function does not exist, ...).
pub fn error_page(title: &str, message: &str, hint: &str) -> String {
    page(
        title,
        &format!(
            "<h1>{}</h1><p>{}</p><p class=\"muted\">{}</p>",
            escape(title),
            escape(message),
            escape(hint)
        ),
    )
}
