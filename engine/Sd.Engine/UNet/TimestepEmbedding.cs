using Sd.Engine.Modules;
using Sd.Engine.Tensors;
using Sd.Kernels.Elementwise;

namespace Sd.Engine.UNet;

/// <summary>
/// Sinusoidal timestep features (diffusers get_timestep_embedding, computed in float32 like PyTorch) followed by the
/// TimestepEmbedding MLP linear_1 -> SiLU -> linear_2. The output goes through SiLU once more here, because every
/// ResNet block applies SiLU to it before its own projection. An LCM-distilled UNet adds cond_proj(condition), its
/// guidance-scale embedding projected without bias, to the sinusoidal features first.
/// Reference: diffusers Timesteps, TimestepEmbedding (embeddings.py).
/// </summary>
internal sealed unsafe class TimestepEmbedding : IDisposable
{
    private readonly Linear _linear1;
    private readonly Linear _linear2;
    private readonly Linear? _condProj;
    private readonly int _channels;
    private readonly bool _flipSinToCos;
    private readonly float _freqShift;

    private static readonly float NegativeLogMaxPeriod = (float)-Math.Log(10000.0);

    public TimestepEmbedding(WeightBinder binder, int channels, int embeddingDim, bool flipSinToCos, int freqShift, int? condDim)
    {
        _channels = channels;
        _flipSinToCos = flipSinToCos;
        _freqShift = freqShift;
        EmbeddingDim = embeddingDim;
        _linear1 = new Linear(binder.Child("linear_1"), channels, embeddingDim);
        _linear2 = new Linear(binder.Child("linear_2"), embeddingDim, embeddingDim);
        if (condDim is { } dim)
        {
            _condProj = new Linear(binder.Child("cond_proj"), dim, channels, bias: false);
        }
    }

    public int EmbeddingDim { get; }

    /// <summary>Width of the condition rows <see cref="Forward"/> takes (null: the model takes none).</summary>
    public int? ConditionDim => _condProj?.InFeatures;

    /// <summary>
    /// silu(emb) [batch, EmbeddingDim] for one timestep per image and, for a model with cond_proj, optionally
    /// <see cref="ConditionDim"/>-wide condition rows: one for the batch or one per image (empty: none, as diffusers'
    /// condition=None). Scratch: sinusoid [batch, channels] and hidden [batch, EmbeddingDim] (caller's small buffers).
    /// </summary>
    public void Forward(ReadOnlySpan<float> timesteps, ReadOnlySpan<float> condition, float* sinusoid, float* hidden, float* output)
    {
        int batch = timesteps.Length;
        int half = _channels / 2;
        for (int b = 0; b < batch; b++)
        {
            float* row = sinusoid + (long)b * _channels;
            for (int i = 0; i < half; i++)
            {
                // exponent = -ln(10000) * i / (half - shift): torch multiplies by the Python double rounded to
                // float32, then divides, exps and multiplies in float32.
                float exponent = NegativeLogMaxPeriod * i / (half - _freqShift);
                float angle = timesteps[b] * MathF.Exp(exponent);
                float sin = MathF.Sin(angle), cos = MathF.Cos(angle);
                row[i] = _flipSinToCos ? cos : sin;
                row[half + i] = _flipSinToCos ? sin : cos;
            }
            if (_channels % 2 == 1)
            {
                row[_channels - 1] = 0; // torch pads an odd dimension with one zero
            }
        }
        if (!condition.IsEmpty)
        {
            // hidden (EmbeddingDim >= channels wide) holds cond_proj's rows until linear_1 overwrites it. A shared row
            // is projected once: the GEMM computes a row the same way in a batch of any size.
            int rows = condition.Length / _condProj!.InFeatures;
            fixed (float* c = condition)
            {
                _condProj.Forward(c, rows, _condProj.InFeatures, hidden, _channels);
            }
            for (int b = 0; b < batch; b++)
            {
                float* projected = hidden + (long)(rows == 1 ? 0 : b) * _channels;
                float* row = sinusoid + (long)b * _channels;
                for (int i = 0; i < _channels; i++)
                {
                    row[i] += projected[i];
                }
            }
        }
        _linear1.Forward(sinusoid, batch, _channels, hidden, EmbeddingDim);
        Pointwise.Apply(Activation.Silu, hidden, hidden, (nint)batch * EmbeddingDim);
        _linear2.Forward(hidden, batch, EmbeddingDim, output, EmbeddingDim);
        Pointwise.Apply(Activation.Silu, output, output, (nint)batch * EmbeddingDim);
    }

    public void Dispose()
    {
        _linear1.Dispose();
        _linear2.Dispose();
        _condProj?.Dispose();
    }
}
