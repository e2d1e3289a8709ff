-- expand: the color catalog.
CREATE TABLE IF NOT EXISTS colors (
    name   text PRIMARY KEY,
    hex    char(7) NOT NULL CHECK (hex ~ '^#[0-9a-f]{6}$'),
    family text NOT NULL
);
CREATE INDEX IF NOT EXISTS colors_family ON colors (family);
