namespace Sd.Engine.Rng;

/// <summary>
/// The standard 32-bit Mersenne Twister (MT19937) as PyTorch's CPU generator uses it: seeded with
/// <c>init_genrand(seed &amp; 0xffffffff)</c>, so only the low 32 bits of a 64-bit seed count.
/// </summary>
internal sealed class Mt19937
{
    private const int N = 624;
    private const int M = 397;
    private const uint MatrixA = 0x9908b0dfu;
    private const uint UpperMask = 0x80000000u;
    private const uint LowerMask = 0x7fffffffu;

    private readonly uint[] _state = new uint[N];
    private int _index;

    public Mt19937(ulong seed) => Seed(seed);

    public void Seed(ulong seed)
    {
        uint[] mt = _state;
        mt[0] = (uint)(seed & 0xffffffffUL);
        for (int i = 1; i < N; i++)
        {
            mt[i] = unchecked(1812433253u * (mt[i - 1] ^ (mt[i - 1] >> 30)) + (uint)i);
        }
        _index = N;
    }

    /// <summary>The next 32-bit output (torch's <c>random()</c>).</summary>
    public uint Next()
    {
        if (_index >= N)
        {
            Twist();
        }
        uint y = _state[_index++];
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c5680u;
        y ^= (y << 15) & 0xefc60000u;
        y ^= y >> 18;
        return y;
    }

    /// <summary>torch's <c>random64()</c>: the first 32-bit output is the high half.</summary>
    public ulong Next64()
    {
        ulong hi = Next();
        ulong lo = Next();
        return (hi << 32) | lo;
    }

    private void Twist()
    {
        uint[] mt = _state;
        int k = 0;
        for (; k < N - M; k++)
        {
            uint y = (mt[k] & UpperMask) | (mt[k + 1] & LowerMask);
            mt[k] = mt[k + M] ^ (y >> 1) ^ ((y & 1u) * MatrixA);
        }
        for (; k < N - 1; k++)
        {
            uint y = (mt[k] & UpperMask) | (mt[k + 1] & LowerMask);
            mt[k] = mt[k + (M - N)] ^ (y >> 1) ^ ((y & 1u) * MatrixA);
        }
        uint last = (mt[N - 1] & UpperMask) | (mt[0] & LowerMask);
        mt[N - 1] = mt[M - 1] ^ (last >> 1) ^ ((last & 1u) * MatrixA);
        _index = 0;
    }
}
