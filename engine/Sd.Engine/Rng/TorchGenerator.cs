namespace Sd.Engine.Rng;

/// <summary>
/// PyTorch's CPU generator (<c>torch.Generator()</c>, mt19937), reproducing <c>torch.rand</c> and <c>torch.randn</c>
/// float32 draws bit for bit as torch 1.13+ on an AVX2/AVX-512 build produces them (see the fixtures README, section
/// <c>rng/</c>). Draws are allocation-free; the generator is not thread-safe.
/// </summary>
public sealed class TorchGenerator
{
    /// <summary>2π as the float32 the AVX2 kernel multiplies by (6.2831855).</summary>
    private const float TwoPiF = 6.2831855f;

    /// <summary>torch's AVX2 Box–Muller works on blocks of 16: 8 radii paired with 8 angles.</summary>
    private const int Block = 16;
    private const int Half = Block / 2;

    private const float Float24Scale = 1f / (1 << 24);
    private const double Double53Scale = 1.0 / (1UL << 53);

    private readonly Mt19937 _engine;

    /// <summary>The second normal of the last double-path Box–Muller pair (numel &lt; 16), if not yet returned.</summary>
    private double _cachedNormal;
    private bool _hasCachedNormal;

    /// <summary>Equivalent to <c>torch.Generator().manual_seed(seed)</c>. Only the low 32 bits of the seed count.</summary>
    public TorchGenerator(ulong seed)
    {
        _engine = new Mt19937(seed);
    }

    /// <summary>Re-seeds like <c>manual_seed</c>: restarts the engine and drops any cached normal.</summary>
    public void ManualSeed(ulong seed)
    {
        _engine.Seed(seed);
        _hasCachedNormal = false;
        _cachedNormal = 0;
    }

    /// <summary><c>torch.rand(numel)</c> into a contiguous float32 buffer: one 32-bit output per element.</summary>
    public void Rand(Span<float> destination)
    {
        for (int i = 0; i < destination.Length; i++)
        {
            destination[i] = NextUniformFloat();
        }
    }

    /// <summary><c>torch.randn(numel)</c> into a contiguous float32 buffer (mean 0, std 1).</summary>
    public void Randn(Span<float> destination)
    {
        if (destination.Length >= Block)
        {
            RandnFill16(destination);
        }
        else
        {
            for (int i = 0; i < destination.Length; i++)
            {
                destination[i] = (float)NextDoubleNormal();
            }
        }
    }

    /// <summary>torch's <c>normal_fill</c> (contiguous float32, numel ≥ 16), transforming in place.</summary>
    private void RandnFill16(Span<float> data)
    {
        int n = data.Length;
        for (int i = 0; i < n; i++)
        {
            data[i] = NextUniformFloat();
        }
        for (int i = 0; i + Block <= n; i += Block)
        {
            BoxMuller16(data.Slice(i, Block));
        }
        if (n % Block != 0)
        {
            // torch re-draws 16 fresh uniforms into the last 16 slots, overlapping the last full block.
            Span<float> tail = data.Slice(n - Block, Block);
            for (int i = 0; i < Block; i++)
            {
                tail[i] = NextUniformFloat();
            }
            BoxMuller16(tail);
        }
    }

    /// <summary>torch's <c>normal_fill_16</c>: slots j and j+8 hold (u1, u2) in, (r cos θ, r sin θ) out.</summary>
    private static void BoxMuller16(Span<float> block)
    {
        for (int j = 0; j < Half; j++)
        {
            float u1 = 1f - block[j];
            float u2 = block[Half + j];
            float radius = MathF.Sqrt(-2f * CephesFloat.Log(u1));
            float theta = TwoPiF * u2;
            CephesFloat.SinCos(theta, out float sin, out float cos);
            block[j] = radius * cos;
            block[Half + j] = radius * sin;
        }
    }

    /// <summary>
    /// <c>at::normal_distribution&lt;double&gt;</c> (the numel &lt; 16 path): one Box–Muller pair per two values, the
    /// second cached in the generator across calls.
    /// </summary>
    private double NextDoubleNormal()
    {
        if (_hasCachedNormal)
        {
            _hasCachedNormal = false;
            return _cachedNormal;
        }
        double u1 = NextUniformDouble();
        double u2 = NextUniformDouble();
        double r = Math.Sqrt(-2.0 * Math.Log(1.0 - u2));
        double theta = 2.0 * Math.PI * u1;
        _cachedNormal = r * Math.Sin(theta);
        _hasCachedNormal = true;
        return r * Math.Cos(theta);
    }

    private float NextUniformFloat() => (_engine.Next() & 0xffffffu) * Float24Scale;

    private double NextUniformDouble() => (_engine.Next64() & ((1UL << 53) - 1)) * Double53Scale;
}
