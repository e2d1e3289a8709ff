-- expand: palettes, an ordered list of catalog colors each.
CREATE TABLE IF NOT EXISTS palettes (
    name       text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS palette_colors (
    palette  text NOT NULL REFERENCES palettes (name) ON DELETE CASCADE,
    position integer NOT NULL,
    color    text NOT NULL REFERENCES colors (name),
    PRIMARY KEY (palette, position)
);
