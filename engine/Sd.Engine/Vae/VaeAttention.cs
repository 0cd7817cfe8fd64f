using Sd.Engine.Modules;
using Sd.Kernels.Attention;
using Sd.Kernels.Elementwise;

namespace Sd.Engine.Vae;

/// <summary>
/// The VAE mid-block self-attention: one head over all pixels (head dim = channels), GroupNorm (eps 1e-6) before,
/// the input as residual after to_out. Weights may carry the legacy names query/key/value/proj_attn (renamed by the
/// loader) or come from a single file as [C, C, 1, 1] (squeezed by the loader).
/// Reference: diffusers Attention(_from_deprecated_attn_block=True) in UNetMidBlock2D, AttnProcessor.
/// </summary>
internal sealed unsafe class VaeAttention : IDisposable
{
    private readonly GroupNormModule _groupNorm;
    private readonly Linear _qkv;
    private readonly Linear _output;
    private readonly int _channels;

    public VaeAttention(WeightBinder binder, int channels, int groups)
    {
        _channels = channels;
        _groupNorm = new GroupNormModule(binder.Child("group_norm"), groups, channels, 1e-6);
        _qkv = new Linear(binder, ["to_q", "to_k", "to_v"], channels, channels);
        _output = new Linear(binder.Child("to_out").Child(0), channels, channels);
    }

    public void Plan(Workspace workspace, int batch, int height, int width)
    {
        long tokens = (long)batch * height * width;
        workspace.Need(Scratch.TransformerNorm, tokens * _channels);
        workspace.Need(Scratch.AttentionProjections, tokens * 3 * _channels);
        workspace.Need(Scratch.AttentionOutput, tokens * _channels);
    }

    /// <summary>x [N, H, W, C] updated in place: x += to_out(attention(group_norm(x))).</summary>
    public void Forward(float* x, int batch, int height, int width, Workspace ws)
    {
        int length = height * width;
        int rows = batch * length;
        int c = _channels;
        float* normed = ws[Scratch.TransformerNorm];
        float* qkv = ws[Scratch.AttentionProjections];
        float* attended = ws[Scratch.AttentionOutput];
        _groupNorm.Forward(x, normed, batch, length, Activation.None);
        _qkv.Forward(normed, rows, c, qkv, 3 * c);
        AttentionKernels.Run(new AttentionProblem(qkv, 3 * c, qkv + c, 3 * c, qkv + 2 * c, 3 * c, attended, c,
            batch, 1, length, length, c));
        _output.Forward(attended, rows, c, x, c, residual: x, ldr: c);
    }

    public void Dispose()
    {
        _groupNorm.Dispose();
        _qkv.Dispose();
        _output.Dispose();
    }
}
