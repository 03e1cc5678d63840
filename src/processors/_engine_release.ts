/**
 * When the engine pool gives freed memory back to the system, and how much
 * memory of ended workers it still counts until then.
 *
 * Contract:
 * - A worker's thread ends about a second after `terminate()`, and the C
 *   library keeps what it freed mapped until asked to give it back
 *   (`src/util/release_memory.ts`). So an ended worker's estimate stays
 *   counted ({@linkcode FreedMemory.draining}) until the release, and a new
 *   worker does not compile its engine while the old one's memory is held.
 * - The release runs once, {@linkcode RELEASE_AFTER_MS} after the last of a
 *   series of requests: the call walks every arena and blocks the event
 *   loop for a moment on a loaded machine.
 * - A dropped compiled module lives until this thread's wrapper of it is
 *   collected, so the release after a drop runs one full collection first.
 * - After each release, and after a wake-up asked for by jobs that wait for
 *   memory, `onReleased` is called (the pool pumps its queue again).
 *
 * @module
 */
import { collectGarbage, releaseFreedMemory } from "../util/release_memory.ts";

/** Milliseconds after a worker's end when its freed memory is given back (its thread is gone by then). */
export const RELEASE_AFTER_MS = 1_500;

/** The pool's schedule of memory releases; see the module documentation. */
export class FreedMemory {
  readonly #onReleased: () => void;
  #releaseTimer: ReturnType<typeof setTimeout> | undefined;
  #wakeTimer: ReturnType<typeof setTimeout> | undefined;
  #collect = false;
  /** Estimated bytes of ended workers not yet given back. */
  draining = 0;

  constructor(onReleased: () => void) {
    this.#onReleased = onReleased;
  }

  /** A worker holding an estimated `bytes` ended: counted until the next release. */
  ended(bytes: number): void {
    this.draining += bytes;
  }

  /** A compiled module was let go: the next release collects first. */
  dropped(): void {
    this.#collect = true;
    this.later();
  }

  /**
   * Gives freed memory back within {@linkcode RELEASE_AFTER_MS}, unless a
   * release is already due. Compiling an engine leaves ~50–90 MiB of the
   * compiler's freed memory in the C library's arenas, a large job tens of
   * MiB more (measured: an esbuild worker that has just loaded its engine,
   * 252 → 184 MiB process RSS after the release; after a 1.2 MB script,
   * 240 → 206 MiB).
   */
  soon(): void {
    if (this.#releaseTimer) return;
    this.later();
  }

  /** Schedules the release {@linkcode RELEASE_AFTER_MS} from now (after the last of a series). */
  later(): void {
    clearTimeout(this.#releaseTimer);
    const timer = setTimeout(() => {
      this.#releaseTimer = undefined;
      if (this.#collect) collectGarbage();
      this.#collect = false;
      releaseFreedMemory();
      this.draining = 0;
      this.#onReleased();
    }, RELEASE_AFTER_MS);
    Deno.unrefTimer(timer as unknown as number);
    this.#releaseTimer = timer;
  }

  /** Calls `onReleased` once the memory being drained is given back (a timer that keeps the process alive: jobs wait). */
  wakeAfterRelease(): void {
    this.#wakeTimer ??= setTimeout(() => {
      this.#wakeTimer = undefined;
      this.#onReleased();
    }, RELEASE_AFTER_MS + 50);
  }

  /** Nothing left scheduled, nothing counted (the pool is closed). */
  stop(): void {
    clearTimeout(this.#releaseTimer);
    this.#releaseTimer = undefined;
    clearTimeout(this.#wakeTimer);
    this.#wakeTimer = undefined;
    this.draining = 0;
  }
}
