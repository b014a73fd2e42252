// Seeded pseudo-random numbers for the simulator. Math.random is never used:
// every choice in a run comes from a stream derived from the run's seed.
//
// The generator is xoshiro128** (Blackman and Vigna, "Scrambled linear
// pseudorandom number generators", 2018), seeded through splitmix32 so that
// nearby seeds give unrelated streams.

/** One step of splitmix32: returns the next output and advances the state. */
function splitmix32(state: { value: number }): number {
  state.value = (state.value + 0x9e3779b9) | 0;
  let z = state.value;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** Mixes two 32-bit values into one, used to derive independent streams. */
export function mixSeed(a: number, b: number): number {
  const state = { value: (Math.imul(a | 0, 0x27d4eb2d) ^ (b | 0)) | 0 };
  return splitmix32(state);
}

export class SimRandom {
  #s0: number;
  #s1: number;
  #s2: number;
  #s3: number;

  constructor(seed: number) {
    const state = { value: seed | 0 };
    this.#s0 = splitmix32(state);
    this.#s1 = splitmix32(state);
    this.#s2 = splitmix32(state);
    this.#s3 = splitmix32(state);
    if ((this.#s0 | this.#s1 | this.#s2 | this.#s3) === 0) this.#s0 = 1;
  }

  /** Returns a uniformly distributed unsigned 32-bit integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.#s1, 5), 7), 9) >>> 0;
    const t = this.#s1 << 9;
    this.#s2 ^= this.#s0;
    this.#s3 ^= this.#s1;
    this.#s1 ^= this.#s2;
    this.#s0 ^= this.#s3;
    this.#s2 ^= t;
    this.#s3 = rotl(this.#s3, 11);
    return result;
  }

  /** Returns a number in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Returns an integer in [min, max], both inclusive. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** Returns true with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("cannot pick from an empty list");
    return items[Math.floor(this.next() * items.length)];
  }

  /** Returns a copy of `items` in random order (Fisher-Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }

  /** Creates an independent stream; the same parent state and label give the same stream. */
  fork(label: number): SimRandom {
    return new SimRandom(mixSeed(this.nextUint32(), label));
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
