using Sd.Engine.Adapters;
using Sd.Engine.Modules;
using Sd.Kernels.Attention;
using Sd.Kernels.Elementwise;

namespace Sd.Engine.UNet;

/// <summary>
/// Multi-head attention of the UNet's transformer blocks: self-attention (q, k, v from the tokens, fused into one
/// GEMM) or cross-attention (q from the tokens, k and v from the text context, fused into one GEMM and kept while the
/// context stays the same, see <see cref="TextContext"/>). No q/k/v bias;
/// to_out.0 has one and adds the block's residual in its epilogue. upcast_attention changes nothing in fp32.
/// A UNet's cross-attention also attends to IP-Adapters' image tokens when the context carries them: the same queries
/// against each adapter's k and scaled v for this layer, added to the text's attention before to_out (with masks,
/// each picture's attention weighted per query by its mask).
/// Reference: diffusers Attention with AttnProcessor and IPAdapterAttnProcessor2_0 (attention_processor.py).
/// </summary>
internal sealed unsafe class Attention : IDisposable
{
    private readonly Linear _projections;
    private readonly Linear? _query;
    private readonly Linear _output;
    private readonly int _channels;
    private readonly int _heads;

    /// <summary>Cross-attention: the workspace's kept block for the context's k|v, set by <see cref="Plan"/>.</summary>
    private int _contextSlot = -1;

    /// <param name="contextDim">0 for self-attention, else the cross-attention (text) width.</param>
    public Attention(WeightBinder binder, int channels, int heads, int contextDim)
    {
        _channels = channels;
        _heads = heads;
        IsCross = contextDim > 0;
        if (IsCross)
        {
            _query = new Linear(binder.Child("to_q"), channels, channels, bias: false);
            _projections = new Linear(binder, ["to_k", "to_v"], contextDim, channels, bias: false);
        }
        else
        {
            _projections = new Linear(binder, ["to_q", "to_k", "to_v"], channels, channels, bias: false);
        }
        _output = new Linear(binder.Child("to_out").Child(0), channels, channels);
    }

    public bool IsCross { get; }

    /// <summary>Query (and output) channels.</summary>
    public int Channels => _channels;

    /// <summary>
    /// A UNet cross-attention's place in diffusers' processor order (IP-Adapter layer index); -1 for self-attention and
    /// for a ControlNet's layers, which never see image tokens. Set once as the UNet is built.
    /// </summary>
    public int ImagePromptLayer { get; set; } = -1;

    public void Plan(Workspace workspace, long tokens, long contextTokens)
    {
        workspace.Need(Scratch.AttentionProjections, tokens * _channels * (IsCross ? 1 : 3));
        workspace.Need(Scratch.AttentionOutput, tokens * _channels);
        if (IsCross)
        {
            _contextSlot = workspace.Keep(contextTokens * 2 * _channels);
        }
    }

    /// <summary>
    /// hidden [batch * length, C] += to_out(attention(normed)); normed is the LayerNorm output of hidden.
    /// Self-attention ignores <paramref name="context"/>.
    /// </summary>
    public void Forward(float* normed, float* hidden, int batch, int length, in TextContext context, Workspace ws)
    {
        int rows = batch * length;
        int c = _channels;
        float* projections = ws[Scratch.AttentionProjections];
        float* output = ws[Scratch.AttentionOutput];
        if (IsCross)
        {
            float* kv = ws.Kept(_contextSlot); // [batch * context.Length, 2C]: k | v
            _query!.Forward(normed, rows, c, projections, c);
            if (!context.Unchanged)
            {
                _projections.Forward(context.Data, batch * context.Length, _projections.InFeatures, kv, 2 * c);
            }
            if (context.KeyLengths is { } keyLengths)
            {
                // Images attend to different numbers of tokens (prompts of different lengths): one problem each.
                for (int b = 0; b < batch; b++)
                {
                    float* imageKv = kv + (long)b * context.Length * 2 * c;
                    AttentionKernels.Run(new AttentionProblem(projections + (long)b * length * c, c, imageKv, 2 * c, imageKv + c, 2 * c,
                        output + (long)b * length * c, c, 1, _heads, length, keyLengths[b], c / _heads));
                }
            }
            else
            {
                AttentionKernels.Run(new AttentionProblem(projections, c, kv, 2 * c, kv + c, 2 * c, output, c,
                    batch, _heads, length, context.Length, c / _heads));
            }
            if (context.ImagePrompts is { Count: > 0 } prompts && ImagePromptLayer >= 0)
            {
                // normed is dead once q is projected from it (the block's next LayerNorm overwrites it): [rows, C] scratch.
                AttendImages(prompts, projections, output, normed, batch, length);
            }
        }
        else
        {
            _projections.Forward(normed, rows, c, projections, 3 * c);
            AttentionKernels.Run(new AttentionProblem(projections, 3 * c, projections + c, 3 * c, projections + 2 * c, 3 * c, output, c,
                batch, _heads, length, length, c / _heads));
        }
        _output.Forward(output, rows, c, hidden, c, residual: hidden, ldr: c);
    }

    /// <summary>
    /// output [rows, C] += attention(q, k_ip, scale x v_ip) for each IP-Adapter, through <paramref name="scratch"/>
    /// [rows, C]: all its pictures' tokens at once, or with masks each picture's alone, weighted per query by its mask.
    /// </summary>
    private void AttendImages(IReadOnlyList<ImagePrompt> prompts, float* query, float* output, float* scratch, int batch, int length)
    {
        int c = _channels;
        for (int i = 0; i < prompts.Count; i++)
        {
            ImagePrompt prompt = prompts[i];
            if (prompt.LayerScales[ImagePromptLayer] == 0)
            {
                continue; // 0 x attention: the layer is left as it is (InstantStyle's unused blocks)
            }
            float* kv = prompt.KeyValues(ImagePromptLayer); // [batch * tokens, 2C]: k | scale x v
            if (!prompt.IsMasked)
            {
                AttentionKernels.Run(new AttentionProblem(query, c, kv, 2 * c, kv + c, 2 * c, scratch, c,
                    batch, _heads, length, prompt.Tokens, c / _heads));
                Pointwise.Add(output, scratch, output, (nint)batch * length * c);
                continue;
            }
            float* weights = prompt.MaskWeights(ImagePromptLayer, length); // [pictures, length]
            int tokens = prompt.Tokens / prompt.Pictures;
            for (int p = 0; p < prompt.Pictures; p++)
            {
                // Picture p's tokens of image b are rows [b x Tokens + p x tokens, + tokens) of k | v.
                for (int b = 0; b < batch; b++)
                {
                    float* pictureKv = kv + ((long)b * prompt.Tokens + (long)p * tokens) * 2 * c;
                    long offset = (long)b * length * c;
                    AttentionKernels.Run(new AttentionProblem(query + offset, c, pictureKv, 2 * c, pictureKv + c, 2 * c, scratch + offset, c,
                        1, _heads, length, tokens, c / _heads));
                    Pointwise.AddRowScaled(scratch + offset, weights + (long)p * length, output + offset, length, c);
                }
            }
        }
    }

    public void Dispose()
    {
        _projections.Dispose();
        _query?.Dispose();
        _output.Dispose();
    }
}
