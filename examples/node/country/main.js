const fs = require("fs");
const path = require("path");

const countries = JSON.parse(fs.readFileSync(path.join(__dirname, "countries.json"), "utf8"));

exports.handler = (event) => {
  const code = String(event.code ?? "").toUpperCase();
  const country = countries[code];
  if (!country) {
    const err = new Error(`unknown country code '${code}'; known: ${Object.keys(countries).join(", ")}`);
    err.name = "KeyError";
    throw err;
  }
  return { code, ...country };
};
