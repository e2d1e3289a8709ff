// Live search through the JSON API, and palette chips coloured from it.
"use strict";

async function fetchColors(query) {
  const response = await fetch(`/api/colors?q=${encodeURIComponent(query)}`, {headers: {accept: "application/json"}});
  if (!response.ok) throw new Error(`GET /api/colors answered ${response.status}`);
  return (await response.json()).colors;
}

function render(colors) {
  const list = document.getElementById("colors");
  list.replaceChildren(...colors.map((c) => {
    const item = document.createElement("li");
    item.className = "swatch";
    item.dataset.name = c.name;
    const chip = document.createElement("span");
    chip.className = "chip";
    chip.style.background = c.hex;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = c.name;
    const hex = document.createElement("code");
    hex.textContent = c.hex;
    item.append(chip, name, hex);
    return item;
  }));
  document.getElementById("count").textContent = `${colors.length} colors`;
}

async function colourPalettes() {
  const byName = new Map((await fetchColors("")).map((c) => [c.name, c.hex]));
  for (const chip of document.querySelectorAll("#palettes .chip")) {
    chip.style.background = byName.get(chip.dataset.color) || "transparent";
  }
  document.body.dataset.ready = "true";
}

let pending;
document.getElementById("search").addEventListener("input", (event) => {
  clearTimeout(pending);
  pending = setTimeout(async () => render(await fetchColors(event.target.value.trim().toLowerCase())), 150);
});
colourPalettes();
