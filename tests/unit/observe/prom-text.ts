/** Parses Prometheus text exposition into `series → value`, series written as `name{a="x",b="y"}` with labels in file order. */
export function parseProm(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    out.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return out;
}

/** Every sample name in `text` (e.g. `x_bucket`, `x_sum`), without labels. */
export function sampleNames(text: string): Set<string> {
  return new Set([...parseProm(text).keys()].map((s) => s.replace(/\{.*$/, '')));
}
