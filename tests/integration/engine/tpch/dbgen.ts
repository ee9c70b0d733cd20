/**
 * A small deterministic TPC-H data generator (seeded), after the value rules
 * of the TPC-H specification (clause 4.2.3) at a reduced scale: the same
 * names, types, brands, containers, segments, priorities, ship modes,
 * phone country codes, price formula, partsupp supplier formula, date
 * ranges and return/line status rules as dbgen, so that the 22 queries with
 * their validation parameters select rows. Two deliberate departures, both
 * to keep every query non-empty at this scale: one order in a hundred has
 * seven high-quantity lines (Q18 asks for orders above 300 units, which at
 * scale 1 are a few dozen of 1.5 million), and keys are dense.
 * Customers whose key is a multiple of 3 place no orders, as in dbgen.
 */

import { seededRandom } from '../../../harness/seeded-random.js';

export interface TpchScale {
  readonly suppliers: number;
  readonly parts: number;
  readonly customers: number;
  readonly orders: number;
}

export const SMALL_SCALE: TpchScale = { suppliers: 100, parts: 2000, customers: 1500, orders: 15000 };

export type Row = readonly (string | number)[];

export interface TpchData {
  readonly region: Row[];
  readonly nation: Row[];
  readonly supplier: Row[];
  readonly part: Row[];
  readonly partsupp: Row[];
  readonly customer: Row[];
  readonly orders: Row[];
  readonly lineitem: Row[];
}

const NATIONS: readonly (readonly [string, number])[] = [
  ['ALGERIA', 0], ['ARGENTINA', 1], ['BRAZIL', 1], ['CANADA', 1], ['EGYPT', 4], ['ETHIOPIA', 0], ['FRANCE', 3], ['GERMANY', 3], ['INDIA', 2],
  ['INDONESIA', 2], ['IRAN', 4], ['IRAQ', 4], ['JAPAN', 2], ['JORDAN', 4], ['KENYA', 0], ['MOROCCO', 0], ['MOZAMBIQUE', 0], ['PERU', 1],
  ['CHINA', 2], ['ROMANIA', 3], ['SAUDI ARABIA', 4], ['VIETNAM', 2], ['RUSSIA', 3], ['UNITED KINGDOM', 3], ['UNITED STATES', 1],
];
const REGIONS = ['AFRICA', 'AMERICA', 'ASIA', 'EUROPE', 'MIDDLE EAST'];
const COLORS = [
  'almond', 'antique', 'aquamarine', 'azure', 'beige', 'bisque', 'black', 'blanched', 'blue', 'blush', 'brown', 'burlywood', 'burnished',
  'chartreuse', 'chiffon', 'chocolate', 'coral', 'cornflower', 'cornsilk', 'cream', 'cyan', 'dark', 'deep', 'dim', 'dodger', 'drab', 'firebrick',
  'floral', 'forest', 'frosted', 'gainsboro', 'ghost', 'goldenrod', 'green', 'grey', 'honeydew', 'hot', 'indian', 'ivory', 'khaki', 'lace',
  'lavender', 'lawn', 'lemon', 'light', 'lime', 'linen', 'magenta', 'maroon', 'medium', 'metallic', 'midnight', 'mint', 'misty', 'moccasin',
  'navajo', 'navy', 'olive', 'orange', 'orchid', 'pale', 'papaya', 'peach', 'peru', 'pink', 'plum', 'powder', 'puff', 'purple', 'red', 'rose',
  'rosy', 'royal', 'saddle', 'salmon', 'sandy', 'seashell', 'sienna', 'sky', 'slate', 'smoke', 'snow', 'spring', 'steel', 'tan', 'thistle',
  'tomato', 'turquoise', 'violet', 'wheat', 'white', 'yellow',
];
const TYPE1 = ['STANDARD', 'SMALL', 'MEDIUM', 'LARGE', 'ECONOMY', 'PROMO'];
const TYPE2 = ['ANODIZED', 'BURNISHED', 'PLATED', 'POLISHED', 'BRUSHED'];
const TYPE3 = ['TIN', 'NICKEL', 'BRASS', 'STEEL', 'COPPER'];
const CONTAINER1 = ['SM', 'LG', 'MED', 'JUMBO', 'WRAP'];
const CONTAINER2 = ['CASE', 'BOX', 'BAG', 'JAR', 'PKG', 'PACK', 'CAN', 'DRUM'];
const SEGMENTS = ['AUTOMOBILE', 'BUILDING', 'FURNITURE', 'MACHINERY', 'HOUSEHOLD'];
const PRIORITIES = ['1-URGENT', '2-HIGH', '3-MEDIUM', '4-NOT SPECIFIED', '5-LOW'];
const INSTRUCTIONS = ['DELIVER IN PERSON', 'COLLECT COD', 'NONE', 'TAKE BACK RETURN'];
const MODES = ['REG AIR', 'AIR', 'RAIL', 'SHIP', 'TRUCK', 'MAIL', 'FOB'];
const WORDS = [
  'furiously', 'special', 'requests', 'carefully', 'regular', 'deposits', 'quickly', 'final', 'accounts', 'ironic', 'packages', 'blithely',
  'pending', 'express', 'theodolites', 'slyly', 'bold', 'instructions', 'even', 'foxes', 'unusual', 'pinto', 'beans', 'courts', 'platelets',
];

/** Days since 1970-01-01 of a calendar date. */
const day = (y: number, m: number, d: number): number => Date.UTC(y, m - 1, d) / 86_400_000;
const iso = (days: number): string => new Date(days * 86_400_000).toISOString().slice(0, 10);
const START = day(1992, 1, 1);
const END = day(1998, 12, 31);
const CURRENT = day(1995, 6, 17);

/** Generates the eight tables; the same seed and scale always give the same rows. */
export function generateTpch(seed: number, scale: TpchScale = SMALL_SCALE): TpchData {
  const rnd = seededRandom(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const cents = (lo: number, hi: number): string => (int(lo * 100, hi * 100) / 100).toFixed(2);
  /** Random words, cut to the column's width. */
  const text = (min: number, max: number, width: number): string =>
    Array.from({ length: int(min, max) }, () => pick(WORDS)).join(' ').slice(0, width).trim();
  const phone = (nation: number): string => `${nation + 10}-${int(100, 999)}-${int(100, 999)}-${int(1000, 9999)}`;
  const pad = (n: number): string => String(n).padStart(9, '0');

  const region = REGIONS.map((name, i) => [i, name, text(3, 8, 152)]);
  const nation = NATIONS.map(([name, r], i) => [i, name, r, text(3, 8, 152)]);
  const supplier = Array.from({ length: scale.suppliers }, (_, i) => {
    const key = i + 1;
    const nationKey = int(0, 24);
    // dbgen puts "Customer … Complaints" into a few supplier comments (Q16 excludes them).
    const comment = key % 20 === 7 ? `${text(1, 3, 40)} Customer ${text(1, 2, 40)} Complaints` : text(4, 10, 101);
    return [key, `Supplier#${pad(key)}`, text(1, 3, 40), nationKey, phone(nationKey), cents(-999.99, 9999.99), comment];
  });
  const retail: number[] = [];
  const part = Array.from({ length: scale.parts }, (_, i) => {
    const key = i + 1;
    const names = new Set<string>();
    while (names.size < 5) names.add(pick(COLORS));
    const m = int(1, 5);
    const price = (90000 + (Math.floor(key / 10) % 20001) + 100 * (key % 1000)) / 100;
    retail[key] = price;
    return [
      key, [...names].join(' '), `Manufacturer#${m}`, `Brand#${m}${int(1, 5)}`, `${pick(TYPE1)} ${pick(TYPE2)} ${pick(TYPE3)}`, int(1, 50),
      `${pick(CONTAINER1)} ${pick(CONTAINER2)}`, price.toFixed(2), text(1, 3, 23),
    ];
  });
  const S = scale.suppliers;
  const supplierOf = (partKey: number, i: number): number => ((partKey + i * (Math.floor(S / 4) + Math.floor((partKey - 1) / S))) % S) + 1;
  const partsupp: Row[] = [];
  for (let p = 1; p <= scale.parts; p++) {
    for (let i = 0; i < 4; i++) partsupp.push([p, supplierOf(p, i), int(1, 9999), cents(1, 1000), text(5, 12, 199)]);
  }
  const customer = Array.from({ length: scale.customers }, (_, i) => {
    const key = i + 1;
    const nationKey = int(0, 24);
    return [key, `Customer#${pad(key)}`, text(1, 3, 40), nationKey, phone(nationKey), cents(-999.99, 9999.99), pick(SEGMENTS), text(4, 10, 117)];
  });
  const orders: Row[] = [];
  const lineitem: Row[] = [];
  for (let o = 1; o <= scale.orders; o++) {
    let cust = int(1, scale.customers);
    while (cust % 3 === 0) cust = int(1, scale.customers);
    const orderDate = int(START, END - 151);
    const big = rnd() < 0.01;
    const lines = big ? 7 : int(1, 7);
    let total = 0;
    const statuses = new Set<string>();
    for (let l = 1; l <= lines; l++) {
      const partKey = int(1, scale.parts);
      const quantity = big ? int(40, 50) : int(1, 50);
      const extended = Math.round(quantity * retail[partKey]! * 100) / 100;
      const discount = int(0, 10) / 100;
      const tax = int(0, 8) / 100;
      const ship = orderDate + int(1, 121);
      const commit = orderDate + int(30, 90);
      const receipt = ship + int(1, 30);
      const returnFlag = receipt <= CURRENT ? pick(['R', 'A']) : 'N';
      const lineStatus = ship > CURRENT ? 'O' : 'F';
      statuses.add(lineStatus);
      total += extended * (1 + tax) * (1 - discount);
      lineitem.push([
        o, partKey, supplierOf(partKey, int(0, 3)), l, quantity, extended.toFixed(2), discount.toFixed(2), tax.toFixed(2), returnFlag, lineStatus,
        iso(ship), iso(commit), iso(receipt), pick(INSTRUCTIONS), pick(MODES), text(1, 4, 44),
      ]);
    }
    const status = statuses.size > 1 ? 'P' : [...statuses][0]!;
    orders.push([o, cust, status, total.toFixed(2), iso(orderDate), pick(PRIORITIES), `Clerk#${pad(int(1, Math.max(1, scale.orders / 1500)))}`, 0, text(3, 8, 79)]);
  }
  return { region, nation, supplier, part, partsupp, customer, orders, lineitem };
}

/** Multi-row INSERT statements of `rows` into `table`, `batch` rows each, values as SQL literals. */
export function insertStatements(table: string, columns: readonly string[], rows: readonly Row[], batch = 500): string[] {
  const literal = (v: string | number): string => (typeof v === 'number' ? String(v) : `'${v.replaceAll("'", "''")}'`);
  const out: string[] = [];
  for (let i = 0; i < rows.length; i += batch) {
    const values = rows.slice(i, i + batch).map((r) => `(${r.map(literal).join(', ')})`);
    out.push(`INSERT INTO ${table} (${columns.join(', ')}) VALUES ${values.join(', ')}`);
  }
  return out;
}
