using Sd.Engine.Modules;
using Sd.Kernels.Elementwise;
using Sd.Kernels.Gemm;

namespace Sd.Engine.UNet;

/// <summary>
/// One transformer layer over the pixels as tokens: LayerNorm -> self-attention -> LayerNorm -> cross-attention
/// -> LayerNorm -> GEGLU feed-forward, each with its residual.
/// Reference: diffusers BasicTransformerBlock (attention.py), FeedForward with GEGLU.
/// </summary>
internal sealed unsafe class BasicTransformerBlock : IDisposable
{
    private readonly LayerNormModule _norm1;
    private readonly Attention _attn1;
    private readonly LayerNormModule _norm2;
    private readonly Attention _attn2;
    private readonly LayerNormModule _norm3;
    private readonly Linear _ffIn;
    private readonly Linear _ffOut;
    private readonly int _channels;
    private readonly int _inner;

    public BasicTransformerBlock(WeightBinder binder, int channels, int heads, int contextDim)
    {
        _channels = channels;
        _inner = 4 * channels;
        _norm1 = new LayerNormModule(binder.Child("norm1"), channels, 1e-5);
        _attn1 = new Attention(binder.Child("attn1"), channels, heads, contextDim: 0);
        _norm2 = new LayerNormModule(binder.Child("norm2"), channels, 1e-5);
        _attn2 = new Attention(binder.Child("attn2"), channels, heads, contextDim);
        _norm3 = new LayerNormModule(binder.Child("norm3"), channels, 1e-5);
        WeightBinder ff = binder.Child("ff").Child("net");
        _ffIn = new Linear(ff.Child(0).Child("proj"), channels, 2 * _inner);
        _ffOut = new Linear(ff.Child(2), _inner, channels);
    }

    public void Plan(Workspace workspace, long tokens, long contextTokens)
    {
        workspace.Need(Scratch.TransformerNorm, tokens * _channels);
        // Fused feed-forwards (long M) need no [tokens, 2 x inner] temporary: 84 MB at 64x64 latents, batch 2.
        workspace.Need(Scratch.FeedForward, GemmKernels.FeedForwardTempFloats(checked((int)tokens), _ffIn.Weight));
        _attn1.Plan(workspace, tokens, contextTokens);
        _attn2.Plan(workspace, tokens, contextTokens);
    }

    /// <summary>attn2, the attention to the text (and to an IP-Adapter's image tokens).</summary>
    public Attention CrossAttention => _attn2;

    /// <summary>hidden [batch * length, C], updated in place.</summary>
    public void Forward(float* hidden, int batch, int length, in TextContext context, Workspace ws)
    {
        SelfAttend(hidden, batch, length, context, ws);
        AttendTextAndFeedForward(hidden, batch, length, context, ws);
    }

    /// <summary>hidden += attn1(norm1(hidden)): the part of the block that does not see the text.</summary>
    public void SelfAttend(float* hidden, int batch, int length, in TextContext context, Workspace ws)
    {
        float* normed = ws[Scratch.TransformerNorm];
        _norm1.Forward(hidden, normed, batch * length);
        _attn1.Forward(normed, hidden, batch, length, context, ws);
    }

    /// <summary>hidden += attn2(norm2(hidden), text), then hidden += ff(norm3(hidden)).</summary>
    public void AttendTextAndFeedForward(float* hidden, int batch, int length, in TextContext context, Workspace ws)
    {
        int rows = batch * length;
        float* normed = ws[Scratch.TransformerNorm];
        _norm2.Forward(hidden, normed, rows);
        _attn2.Forward(normed, hidden, batch, length, context, ws);
        _norm3.Forward(hidden, normed, rows);
        // Unplanned when every feed-forward at this shape runs fused (see Plan); a fused one ignores it.
        float* ff = ws.Size(Scratch.FeedForward) > 0 ? ws[Scratch.FeedForward] : null;
        // ff.net.0 (GEGLU projection) and ff.net.2 with the residual, fused per row block where M allows.
        GemmKernels.FeedForwardGeglu(rows, normed, _channels, _ffIn.Weight, _ffIn.BiasPointer, _ffOut.Weight, _ffOut.BiasPointer,
            hidden, _channels, ff);
    }

    public void Dispose()
    {
        _norm1.Dispose();
        _attn1.Dispose();
        _norm2.Dispose();
        _attn2.Dispose();
        _norm3.Dispose();
        _ffIn.Dispose();
        _ffOut.Dispose();
    }
}

/// <summary>
/// GroupNorm (eps 1e-6) -> proj_in -> transformer blocks -> proj_out, plus the input as residual. proj_in/out are
/// 1x1 convolutions (SD 1.x) or Linear layers (use_linear_projection, SD 2.x); on NHWC pixels both are the same GEMM.
/// Reference: diffusers Transformer2DModel (transformer_2d.py), continuous input.
/// </summary>
internal sealed unsafe class Transformer2DModel : IDisposable
{
    private readonly GroupNormModule _norm;
    private readonly Linear _projIn;
    private readonly BasicTransformerBlock[] _blocks;
    private readonly Linear _projOut;
    private readonly int _channels;

    public Transformer2DModel(WeightBinder binder, int channels, int heads, int contextDim, int layers, int groups, bool linearProjection)
    {
        _channels = channels;
        _norm = new GroupNormModule(binder.Child("norm"), groups, channels, 1e-6);
        _projIn = new Linear(binder.Child("proj_in"), channels, channels, conv1x1: !linearProjection);
        _blocks = new BasicTransformerBlock[layers];
        for (int i = 0; i < layers; i++)
        {
            _blocks[i] = new BasicTransformerBlock(binder.Child("transformer_blocks").Child(i), channels, heads, contextDim);
        }
        _projOut = new Linear(binder.Child("proj_out"), channels, channels, conv1x1: !linearProjection);
    }

    /// <summary>Adds each transformer block's cross-attention, in order.</summary>
    public void AddCrossAttentions(List<Attention> into)
    {
        foreach (BasicTransformerBlock block in _blocks) into.Add(block.CrossAttention);
    }

    public void Plan(Workspace workspace, int batch, int height, int width, int contextLength)
    {
        long tokens = (long)batch * height * width;
        workspace.Need(Scratch.TransformerTokens, tokens * _channels);
        workspace.Need(Scratch.TransformerNorm, tokens * _channels);
        foreach (BasicTransformerBlock block in _blocks)
        {
            block.Plan(workspace, tokens, (long)batch * contextLength);
        }
    }

    /// <summary>
    /// x [N, H, W, C] updated in place: x += proj_out(blocks(proj_in(norm(x)))). With <paramref name="repeatedHalves"/>
    /// only x's first half is filled, and equal to its second (<see cref="RepeatedHalves"/>): everything up to the first
    /// block's cross-attention runs on that half, then the tokens and x are copied over the second half.
    /// </summary>
    public void Forward(float* x, int batch, int height, int width, in TextContext context, Workspace ws, bool repeatedHalves)
    {
        int length = height * width;
        int rows = batch * length;
        int leading = repeatedHalves ? batch / 2 : batch;
        float* normed = ws[Scratch.TransformerNorm];
        float* tokens = ws[Scratch.TransformerTokens];
        _norm.Forward(x, normed, leading, length, Activation.None);
        _projIn.Forward(normed, leading * length, _channels, tokens, _channels);
        _blocks[0].SelfAttend(tokens, leading, length, context, ws);
        if (repeatedHalves)
        {
            long half = (long)leading * length * _channels;
            RepeatedHalves.CopyFirstToSecond(tokens, half);
            RepeatedHalves.CopyFirstToSecond(x, half);
        }
        _blocks[0].AttendTextAndFeedForward(tokens, batch, length, context, ws);
        for (int i = 1; i < _blocks.Length; i++)
        {
            _blocks[i].Forward(tokens, batch, length, context, ws);
        }
        _projOut.Forward(tokens, rows, _channels, x, _channels, residual: x, ldr: _channels);
    }

    public void Dispose()
    {
        _norm.Dispose();
        _projIn.Dispose();
        foreach (BasicTransformerBlock block in _blocks)
        {
            block.Dispose();
        }
        _projOut.Dispose();
    }
}
