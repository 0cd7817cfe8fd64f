namespace Sd.Kernels.Attention;

/// <summary>
/// One multi-head attention call, O = softmax(Q K^T / sqrt(d)) V per batch item b and head h, in the layout the
/// engine's projections produce: channels-last with the heads interleaved in the channel dimension. Q is
/// [Batch, QueryLength, Heads*HeadDim] row-major with row stride <see cref="Ldq"/> floats (batch stride
/// QueryLength*Ldq), K and V are [Batch, KeyLength, Heads*HeadDim] with strides <see cref="Ldk"/>/<see cref="Ldv"/>,
/// O is [Batch, QueryLength, Heads*HeadDim] with stride <see cref="Ldo"/>; head h occupies channels
/// [h*HeadDim, (h+1)*HeadDim). Strides may exceed Heads*HeadDim so Q, K and V can be column slices of one fused QKV
/// projection output. O must not overlap Q, K or V.
/// </summary>
public unsafe struct AttentionProblem
{
    public float* Q;
    public float* K;
    public float* V;
    public float* O;
    public nint Ldq;
    public nint Ldk;
    public nint Ldv;
    public nint Ldo;
    public int Batch;
    public int Heads;
    public int QueryLength;
    public int KeyLength;
    public int HeadDim;

    /// <summary>Causal mask (CLIP's text encoder): key j is hidden from query i when j &gt; i.</summary>
    public bool Causal;

    public AttentionProblem(
        float* q, nint ldq, float* k, nint ldk, float* v, nint ldv, float* o, nint ldo,
        int batch, int heads, int queryLength, int keyLength, int headDim, bool causal = false)
    {
        Q = q;
        K = k;
        V = v;
        O = o;
        Ldq = ldq;
        Ldk = ldk;
        Ldv = ldv;
        Ldo = ldo;
        Batch = batch;
        Heads = heads;
        QueryLength = queryLength;
        KeyLength = keyLength;
        HeadDim = headDim;
        Causal = causal;
    }

    /// <summary>The softmax temperature, 1/sqrt(d), computed the same way by every variant.</summary>
    public readonly float Scale => 1f / MathF.Sqrt(HeadDim);

    /// <summary>Rejects shapes the kernels do not handle (they trust their arguments; the dispatcher checks).</summary>
    public readonly void Validate()
    {
        if (Q == null || K == null || V == null || O == null)
        {
            throw new ArgumentException("Q, K, V and O must all be non-null");
        }
        if (Batch < 1 || Heads < 1 || QueryLength < 1 || KeyLength < 1 || HeadDim < 1)
        {
            throw new ArgumentException(
                $"batch {Batch}, heads {Heads}, query length {QueryLength}, key length {KeyLength} and head dim " +
                $"{HeadDim} must all be positive");
        }
        long width = (long)Heads * HeadDim;
        if (Ldq < width || Ldk < width || Ldv < width || Ldo < width)
        {
            throw new ArgumentException(
                $"row strides (q {Ldq}, k {Ldk}, v {Ldv}, o {Ldo}) must be at least heads*headDim = {width}");
        }
    }
}
