// An ES module using a dependency from package.json, and a template shipped next to it.
import { readFileSync } from "node:fs";
import Mustache from "mustache";

const page = readFileSync(new URL("./page.mustache", import.meta.url), "utf8");

export async function handler(event) {
  return { html: Mustache.render(page, { name: event.name ?? "world", items: event.items ?? [] }) };
}
