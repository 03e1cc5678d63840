/** The fileconveyor version. */
export const VERSION = "0.1.0";
