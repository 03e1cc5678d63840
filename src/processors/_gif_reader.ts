/**
 * omggif's GIF decoder, loaded on the first GIF (`loadModule`): every start
 * of the CLI registers the image optimiser, few runs meet a GIF.
 *
 * @module
 */
// @ts-types="@types/omggif"
export { GifReader } from "omggif";
