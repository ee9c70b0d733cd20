import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/** Every .ts file under `dir`. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

describe('gRPC is not a runtime dependency', () => {
  it('no source file loads @grpc/grpc-js (types only, erased at compile time); it stays a devDependency', () => {
    const loads = sources('src').flatMap((file) =>
      [...readFileSync(file, 'utf8').matchAll(/^\s*(import|export)\s+(?!type\b)[^;]*?from\s+['"]@grpc\/grpc-js['"]|import\(\s*['"]@grpc\/grpc-js['"]\s*\)|require\(\s*['"]@grpc\/grpc-js['"]\s*\)/gm)].map((m) => `${file}: ${m[0].trim()}`),
    );
    expect(loads).toEqual([]);
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { dependencies?: Record<string, string>; devDependencies?: Record<string, string> };
    expect(pkg.dependencies?.['@grpc/grpc-js']).toBeUndefined();
    expect(pkg.devDependencies?.['@grpc/grpc-js']).toBe('1.14.0');
  });
});
