/**
 * Parses PostgreSQL's COPY CSV output (FORMAT csv, default delimiter, quote
 * and NULL): fields separated by commas, quoted with `"` (a doubled `"`
 * inside), records ended by a newline outside quotes. An unquoted empty field
 * is NULL; a quoted empty one (`""`) is the empty string, as COPY writes them.
 */
export function parseCsv(text: string): (string | null)[][] {
  const records: (string | null)[][] = [];
  let record: (string | null)[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    let value: string | null;
    if (text[i] === '"') {
      let out = '';
      i++;
      for (;;) {
        const q = text.indexOf('"', i);
        if (q < 0) throw new Error('unterminated quoted field in CSV');
        out += text.slice(i, q);
        if (text[q + 1] === '"') {
          out += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      value = out;
    } else {
      let end = i;
      while (end < n && text[end] !== ',' && text[end] !== '\n') end++;
      value = end === i ? null : text.slice(i, end);
      i = end;
    }
    record.push(value);
    if (i >= n || text[i] === '\n') {
      records.push(record);
      record = [];
      i++;
    } else if (text[i] === ',') {
      i++;
      // A delimiter at the very end of a line or of the text is followed by one more field, empty: NULL.
      if (i >= n || text[i] === '\n') {
        record.push(null);
        records.push(record);
        record = [];
        i++;
      }
    } else {
      throw new Error(`unexpected character after a quoted CSV field at offset ${i}`);
    }
  }
  return records;
}
