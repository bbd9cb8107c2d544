/**
 * torch's CPU generator, bit for bit: `torch.Generator("cpu").manual_seed(seed)` is a 32-bit Mersenne Twister
 * (MT19937, Matsumoto & Nishimura 1998) seeded with `init_genrand`, and `tensor.uniform_(from, to, generator=g)`
 * on a contiguous f32 tensor fills it in memory order, one 32-bit draw u per element, with
 * `x·(to − from) + from` for x = (u & (2^24 − 1))·2^−24, rounded once to f32 (torch's vectorised CPU builds contract
 * it to one FMA; x·(to − from) is exact in f64, so the f64 sum rounded to f32 agrees). PEFT draws VeRA's shared
 * projections this way, so regenerating them from `projection_prng_key` here gives the matrices Python PEFT uses
 * (test/fixtures/peft/make_vera_fixture.py checks this against torch).
 */

const N = 624;
const M = 397;

/** MT19937 as torch's `at::mt19937` (the same stream as C++ `std::mt19937`). */
export class TorchCpuGenerator {
  private readonly mt = new Uint32Array(N);
  private index = N;

  /** `torch.Generator("cpu").manual_seed(seed)` for a seed below 2^32. */
  constructor(seed: number) {
    if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) throw new Error(`TorchCpuGenerator: seed must be an integer in [0, 2^32), got ${seed}`);
    const mt = this.mt;
    mt[0] = seed;
    for (let i = 1; i < N; i++) {
      const p = mt[i - 1]!;
      mt[i] = Math.imul(1812433253, p ^ (p >>> 30)) + i;
    }
  }

  /** The next 32-bit output. */
  nextU32(): number {
    if (this.index >= N) this.twist();
    let y = this.mt[this.index++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    return (y ^ (y >>> 18)) >>> 0;
  }

  private twist(): void {
    const mt = this.mt;
    for (let i = 0; i < N; i++) {
      const y = (mt[i]! & 0x80000000) | (mt[(i + 1) % N]! & 0x7fffffff);
      mt[i] = mt[(i + M) % N]! ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
    }
    this.index = 0;
  }

  /** Fills `out` as `torch.Tensor.uniform_(from, to, generator=this)` fills an f32 tensor of that many elements. */
  uniform(out: Float32Array, from: number, to: number): Float32Array {
    const [lo, hi] = [Math.fround(from), Math.fround(to)];
    const span = hi - lo;
    for (let i = 0; i < out.length; i++) out[i] = ((this.nextU32() & 0xffffff) * 2 ** -24) * span + lo;
    return out;
  }
}
