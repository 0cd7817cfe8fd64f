using System.Runtime.CompilerServices;
using Sd.Kernels.Elementwise;

namespace Sd.Kernels.Convolution;

/// <summary>
/// What a convolution applies to its result (after bias and residual) in the same store: nothing, LeakyReLU or PReLU
/// (a slope per output channel), as <see cref="FeatureMapKernels.LeakyRelu"/> and <see cref="FeatureMapKernels.Prelu"/>
/// compute them, so a fused convolution equals the convolution followed by that pass, bit for bit.
/// </summary>
public readonly unsafe struct ConvActivation
{
    private ConvActivation(float slope, float* slopes)
    {
        Enabled = true;
        Slope = slope;
        Slopes = slopes;
    }

    /// <summary>Whether anything is applied (the default activation applies nothing).</summary>
    public bool Enabled { get; }

    /// <summary>The negative slope of LeakyReLU (when <see cref="Slopes"/> is null).</summary>
    public float Slope { get; }

    /// <summary>PReLU's slope per output channel; null for LeakyReLU.</summary>
    public float* Slopes { get; }

    public static ConvActivation LeakyRelu(float slope) => new(slope, null);

    public static ConvActivation Prelu(float* slopes) => slopes != null ? new(0, slopes) : throw new ArgumentNullException(nameof(slopes));

    /// <summary>Applies it to <paramref name="rows"/> pixels of <paramref name="columns"/> channels (a convolution's output) in a separate pass.</summary>
    public void ApplyTo(float* y, nint rows, int columns, nint ldy)
    {
        if (!Enabled)
        {
            return;
        }
        if (Slopes == null)
        {
            FeatureMapKernels.LeakyRelu(y, rows, columns, ldy, Slope);
        }
        else
        {
            FeatureMapKernels.Prelu(y, rows, columns, ldy, Slopes);
        }
    }

    /// <summary>Output channel c's value after the activation.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal float Apply(float value, int c) => !Enabled ? value : FeatureMapKernels.LeakyRelu(value, Slopes == null ? Slope : Slopes[c]);

    /// <summary>A vector of output channels from c after the activation.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal TVec Apply<TVec, V>(TVec value, int c)
        where TVec : unmanaged
        where V : struct, IF32Vector<TVec> =>
        !Enabled ? value : FeatureMapKernels.LeakyRelu<TVec, V>(value, Slopes == null ? V.Create(Slope) : V.Load(Slopes + c));
}
