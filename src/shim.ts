/**
 * Globals some npm packages expect (ssh2 reads `__dirname`); must be the
 * first import so a single-file bundle starts.
 *
 * @module
 */
const g = globalThis as Record<string, unknown>;
g.__dirname ??= import.meta.dirname ?? ".";
g.__filename ??= import.meta.filename ?? "fileconveyor.js";
