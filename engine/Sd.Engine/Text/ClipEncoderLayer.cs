using Sd.Engine.Modules;
using Sd.Kernels.Attention;
using Sd.Kernels.Elementwise;

namespace Sd.Engine.Text;

/// <summary>
/// One pre-LayerNorm transformer layer of a CLIP encoder: h += out_proj(attn(LN1(h))), causal for the text encoder and
/// unmasked for the image encoder, then h += fc2(act(fc1(LN2(h)))). q/k/v are fused into one GEMM.
/// Reference: transformers CLIPEncoderLayer (CLIPAttention, CLIPMLP).
/// </summary>
internal sealed unsafe class ClipEncoderLayer : IDisposable
{
    private readonly LayerNormModule _layerNorm1;
    private readonly Linear _qkv;
    private readonly Linear _outProj;
    private readonly LayerNormModule _layerNorm2;
    private readonly Linear _fc1;
    private readonly Linear _fc2;
    private readonly int _width;
    private readonly int _heads;
    private readonly Activation _activation;
    private readonly bool _causal;

    /// <param name="hiddenAct">transformers' hidden_act: "gelu" (exact) or "quick_gelu".</param>
    public ClipEncoderLayer(WeightBinder binder, int width, int heads, int intermediate, string hiddenAct, double eps, bool causal)
    {
        _width = width;
        _heads = heads;
        _causal = causal;
        _activation = hiddenAct == "gelu" ? Activation.Gelu : Activation.QuickGelu;
        _layerNorm1 = new LayerNormModule(binder.Child("layer_norm1"), _width, eps);
        WeightBinder attention = binder.Child("self_attn");
        _qkv = new Linear(attention, ["q_proj", "k_proj", "v_proj"], _width, _width);
        _outProj = new Linear(attention.Child("out_proj"), _width, _width);
        _layerNorm2 = new LayerNormModule(binder.Child("layer_norm2"), _width, eps);
        _fc1 = new Linear(binder.Child("mlp").Child("fc1"), _width, intermediate);
        _fc2 = new Linear(binder.Child("mlp").Child("fc2"), intermediate, _width);
    }

    /// <summary>
    /// h [batch * length, W] updated in place. Scratch: x [rows, W], qkv [rows, 3W], mlp [rows, intermediate].
    /// </summary>
    public void Forward(float* h, int batch, int length, float* x, float* qkv, float* mlp)
    {
        int rows = batch * length;
        _layerNorm1.Forward(h, x, rows);
        _qkv.Forward(x, rows, _width, qkv, 3 * _width);
        // qkv rows are [q | k | v]; heads are interleaved inside each W-wide slice, as the kernel expects.
        var problem = new AttentionProblem(qkv, 3 * _width, qkv + _width, 3 * _width, qkv + 2 * _width, 3 * _width,
            x, _width, batch, _heads, length, length, _width / _heads, causal: _causal);
        AttentionKernels.Run(problem);
        _outProj.Forward(x, rows, _width, h, _width, residual: h, ldr: _width);
        _layerNorm2.Forward(h, x, rows);
        _fc1.Forward(x, rows, _width, mlp, _fc1.OutFeatures);
        Pointwise.Apply(_activation, mlp, mlp, (nint)rows * _fc1.OutFeatures);
        _fc2.Forward(mlp, rows, _fc1.OutFeatures, h, _width, residual: h, ldr: _width);
    }

    public void Dispose()
    {
        _layerNorm1.Dispose();
        _qkv.Dispose();
        _outProj.Dispose();
        _layerNorm2.Dispose();
        _fc1.Dispose();
        _fc2.Dispose();
    }
}
