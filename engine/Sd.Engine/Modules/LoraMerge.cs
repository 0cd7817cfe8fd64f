using Sd.Engine.Tensors;
using Sd.Kernels.Convert;
using Sd.Kernels.Gemm;
using Sd.Kernels.Layout;
using Sd.Loaders;
using Sd.Loaders.Lora;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Weights;

namespace Sd.Engine.Modules;

/// <summary>
/// Merges LoRA modules' changes into a weight as it is loaded, so the model runs at its usual speed: W [out, rest]
/// += s x update, the update read as [out, rest] (<see cref="LoraUpdate"/>). A low-rank product goes straight into W by
/// the packed GEMM (C = A B^T + C with A = s x up and B = down^T); LoHa's two products are made whole and multiplied
/// element by element, LoKr's Kronecker product is added row by row, full differences are added as read. 16-bit
/// weights are merged in float32 and rounded back to their format (to nearest even), as diffusers' fuse_lora leaves a
/// float16 model float16, so they keep their half-size memory and GEMM path; the rounding and the Inf/NaN and range
/// checks are vectorized (<see cref="Narrow"/>), so they cost little beside the GEMM. A DoRA module's weight is
/// decomposed after its update is added (<see cref="Decompose"/>); several LoRAs on one weight merge in order, so a
/// DoRA module normalises the weight the LoRAs before it left, as ComfyUI's patches do.
/// Reference: diffusers LoraLoaderMixin.fuse_lora (PEFT LoraLayer.merge): W + scale x (B @ A); A1111
/// extensions-builtin/Lora network_hada/network_lokr/network_full calc_updown for the LyCORIS types; LyCORIS
/// apply_weight_decompose and ComfyUI weight_decompose for DoRA.
/// </summary>
internal static unsafe class LoraMerge
{
    /// <summary>Merges into float32 weights <paramref name="w"/> (the entry's element count).</summary>
    public static void Apply(TensorEntry entry, float* w, ReadOnlySpan<WeightDelta> deltas)
    {
        int rows = checked((int)entry.Shape[0]);
        int columns = checked((int)(entry.ElementCount / rows));
        foreach (WeightDelta delta in deltas)
        {
            if (delta.Decomposes)
            {
                Decompose(entry, w, rows, columns, delta);
            }
            else
            {
                AddUpdate(delta, w, columns, delta.Scale);
            }
        }
        int count = checked((int)entry.ElementCount);
        // Inf/NaN: exponent all ones, either sign; the runtime's range search is vectorized.
        var patterns = new ReadOnlySpan<uint>(w, count);
        int bad = FirstInRanges(patterns, 0x7F80_0000u, 0x7FFF_FFFFu, 0xFF80_0000u, 0xFFFF_FFFFu);
        if (bad >= 0)
        {
            throw new InvalidFileException(deltas[0].File.Path,
                $"merging LoRA module(s) {Keys(deltas)} into '{entry.Name}' gives {w[bad]} at element {bad}: the LoRA or the weight holds Inf or NaN, or the sum overflows");
        }
    }

    /// <summary>w [rows, columns] += scale x the delta's update.</summary>
    private static void AddUpdate(WeightDelta delta, float* w, int columns, float scale)
    {
        LoraUpdate update = delta.Update;
        switch (update.Kind)
        {
            case LoraUpdateKind.Single when update.First.IsProduct:
                Multiply(delta.File, update.First, scale, w, accumulate: true);
                break;
            case LoraUpdateKind.Single:
                using (NativeBlock whole = Whole(delta.File, update.First))
                {
                    AddScaled(w, whole.Pointer, null, scale, whole.Length);
                }
                break;
            case LoraUpdateKind.Hadamard:
                using (NativeBlock first = Whole(delta.File, update.First), second = Whole(delta.File, update.Second!))
                {
                    AddScaled(w, first.Pointer, second.Pointer, scale, first.Length);
                }
                break;
            default:
                using (NativeBlock first = Whole(delta.File, update.First), second = Whole(delta.File, update.Second!))
                {
                    AddKronecker(w, columns, first.Pointer, update.First, second.Pointer, update.Second!, scale);
                }
                break;
        }
    }

    /// <summary>
    /// DoRA: V = W + a x update (a: the module's alpha / rank), then W += s x (m x V / (||V|| + eps) - W) for the
    /// user's weight s, the norms per output row, or per input channel (its kh x kw columns of every row).
    /// The sums of squares are float64, so the norms are as exact as PyTorch's float32 ones or better.
    /// </summary>
    private static void Decompose(TensorEntry entry, float* w, int rows, int columns, WeightDelta delta)
    {
        long count = (long)rows * columns;
        using var v = new NativeBlock(count, zero: false);
        Buffer.MemoryCopy(w, v.Pointer, count * sizeof(float), count * sizeof(float));
        AddUpdate(delta, v.Pointer, columns, (float)delta.Module.Scale);
        // Per output row: one factor for a row's columns. Per input channel: one for each run of kh x kw columns.
        bool perInput = delta.MagnitudePerInput;
        int groups = perInput ? checked((int)entry.Shape[1]) : rows, run = perInput ? columns / groups : columns;
        var squares = new double[groups];
        for (int r = 0; r < rows; r++)
        {
            float* row = v.Pointer + (long)r * columns;
            for (int start = 0, g = perInput ? 0 : r; start < columns; start += run, g++)
            {
                double sum = 0;
                for (int c = start; c < start + run; c++)
                {
                    sum += (double)row[c] * row[c];
                }
                squares[g] += sum;
            }
        }
        using var factors = new NativeBlock(groups, zero: false);
        delta.File.ReadFloat32(delta.Module.Magnitude!, factors.Span);
        for (int g = 0; g < groups; g++)
        {
            factors.Pointer[g] = (float)(factors.Pointer[g] / (Math.Sqrt(squares[g]) + Float32Epsilon));
        }
        float s = delta.Strength;
        for (int r = 0; r < rows; r++)
        {
            float* row = v.Pointer + (long)r * columns, target = w + (long)r * columns;
            for (int start = 0, g = perInput ? 0 : r; start < columns; start += run, g++)
            {
                float factor = factors.Pointer[g];
                for (int c = start; c < start + run; c++)
                {
                    float decomposed = row[c] * factor;
                    target[c] = s == 1 ? decomposed : target[c] + s * (decomposed - target[c]);
                }
            }
        }
    }

    /// <summary>torch.finfo(torch.float32).eps, which LyCORIS and ComfyUI add to DoRA's norms.</summary>
    private const double Float32Epsilon = 1.1920928955078125e-7;

    /// <summary>Merges into 16-bit weights <paramref name="bits"/> (F16 or BF16 patterns), in float32 and rounded back.</summary>
    public static void Apply(TensorEntry entry, ushort* bits, WeightFormat format, ReadOnlySpan<WeightDelta> deltas)
    {
        int count = checked((int)entry.ElementCount);
        using var wide = new NativeBlock(count, zero: false);
        var patterns = new ReadOnlySpan<ushort>(bits, count);
        if (format == WeightFormat.F16)
        {
            Widen.F16ToF32(patterns, wide.Span);
        }
        else
        {
            Widen.BF16ToF32(patterns, wide.Span);
        }
        Apply(entry, wide.Pointer, deltas);
        var narrow = new Span<ushort>(bits, count);
        bool f16 = format == WeightFormat.F16;
        if (f16)
        {
            Narrow.F32ToF16(wide.Span, narrow);
        }
        else
        {
            Narrow.F32ToBF16(wide.Span, narrow);
        }
        // The merged values are finite (checked above), so an all-ones exponent is a value rounded past the format's range.
        ushort infinity = f16 ? (ushort)0x7C00 : (ushort)0x7F80;
        int bad = FirstInRanges<ushort>(narrow, infinity, 0x7FFF, (ushort)(infinity | 0x8000), 0xFFFF);
        if (bad >= 0)
        {
            throw new InvalidFileException(deltas[0].File.Path,
                $"merging LoRA module(s) {Keys(deltas)} into '{entry.Name}' gives {wide.Pointer[bad]} at element {bad}, beyond {(f16 ? "float16" : "bfloat16")}'s range");
        }
    }

    /// <summary>A factor as a whole [rows, columns] float32 matrix: read, or its product computed.</summary>
    private static NativeBlock Whole(SafetensorsFile file, LoraFactor factor)
    {
        var block = new NativeBlock(checked(factor.Rows * factor.Columns), zero: false);
        try
        {
            if (factor.Whole is { } whole)
            {
                file.ReadFloat32(whole, block.Span);
            }
            else
            {
                Multiply(file, factor, 1f, block.Pointer, accumulate: false);
            }
        }
        catch
        {
            block.Dispose();
            throw;
        }
        return block;
    }

    /// <summary>
    /// c [rows, columns] (+)= s x up [rows, rank] x down' [rank, columns], where down' is down, or with a Tucker core
    /// down'[i, (j, k, l)] = sum over m of core[i, m, k, l] down[m, j].
    /// </summary>
    private static void Multiply(SafetensorsFile file, LoraFactor factor, float scale, float* c, bool accumulate)
    {
        int rows = checked((int)factor.Rows), columns = checked((int)factor.Columns), rank = factor.Rank;
        using var up = new NativeBlock((long)rows * rank, zero: false);
        using var downT = new NativeBlock((long)columns * rank, zero: false);
        if (factor.UpTransposed)
        {
            using var stored = new NativeBlock((long)rank * rows, zero: false);
            file.ReadFloat32(factor.Up!, stored.Span); // [rank, rows]
            TransposeKernels.Transpose_Tiled(stored.Pointer, up.Pointer, rank, rows);
        }
        else
        {
            file.ReadFloat32(factor.Up!, up.Span); // [rows, rank]
        }
        for (long i = 0; i < up.Length; i++)
        {
            up.Pointer[i] *= scale;
        }
        if (factor.Core is { } core)
        {
            TuckerDownTransposed(file, factor, core, downT.Pointer);
        }
        else
        {
            using var down = new NativeBlock((long)rank * columns, zero: false);
            file.ReadFloat32(factor.Down!, down.Span); // [rank, columns]
            TransposeKernels.Transpose_Tiled(down.Pointer, downT.Pointer, rank, columns); // [columns, rank]: the GEMM's W
        }
        using PackedWeights packed = PackedWeights.Pack(downT.Pointer, columns, rank, rank);
        GemmKernels.Multiply(rows, up.Pointer, rank, packed, c, columns, bias: null, residual: accumulate ? c : null, ldr: columns);
    }

    /// <summary>down'^T [(j, k, l), i] = sum over m of core[i, m, k, l] down[m, j]: the Tucker core folded into down (small: rank^2 x in x kh x kw).</summary>
    private static void TuckerDownTransposed(SafetensorsFile file, LoraFactor factor, TensorInfo core, float* downT)
    {
        int rank = factor.Rank, inner = factor.DownRank;
        int inputs = checked((int)(factor.Down!.ElementCount / inner)), taps = checked((int)(factor.KernelHeight * factor.KernelWidth));
        using var down = new NativeBlock((long)inner * inputs, zero: false);
        using var cores = new NativeBlock((long)rank * inner * taps, zero: false);
        file.ReadFloat32(factor.Down, down.Span); // [inner, inputs]
        file.ReadFloat32(core, cores.Span); // [rank, inner, taps]
        for (int j = 0; j < inputs; j++)
        {
            for (int t = 0; t < taps; t++)
            {
                float* row = downT + ((long)j * taps + t) * rank;
                for (int i = 0; i < rank; i++)
                {
                    float sum = 0;
                    for (int m = 0; m < inner; m++)
                    {
                        sum += cores.Pointer[((long)i * inner + m) * taps + t] * down.Pointer[(long)m * inputs + j];
                    }
                    row[i] = sum;
                }
            }
        }
    }

    /// <summary>w += s x a, or with <paramref name="b"/>, w += s x a x b element by element.</summary>
    private static void AddScaled(float* w, float* a, float* b, float scale, long count)
    {
        for (long i = 0; i < count; i++)
        {
            w[i] += scale * (b is null ? a[i] : a[i] * b[i]);
        }
    }

    /// <summary>w [a x c, b x d] += s x kron(A [a, b], B [c, d]): w[i c + k, j d + l] += s A[i, j] B[k, l].</summary>
    private static void AddKronecker(float* w, int columns, float* a, LoraFactor aShape, float* b, LoraFactor bShape, float scale)
    {
        int aRows = (int)aShape.Rows, aColumns = (int)aShape.Columns, bRows = (int)bShape.Rows, bColumns = (int)bShape.Columns;
        for (int i = 0; i < aRows; i++)
        {
            for (int k = 0; k < bRows; k++)
            {
                float* row = w + (long)(i * bRows + k) * columns;
                float* source = b + (long)k * bColumns;
                for (int j = 0; j < aColumns; j++)
                {
                    float factor = scale * a[i * aColumns + j];
                    float* target = row + (long)j * bColumns;
                    for (int l = 0; l < bColumns; l++)
                    {
                        target[l] += factor * source[l];
                    }
                }
            }
        }
    }

    /// <summary>The first index holding a value in either inclusive range, or -1.</summary>
    private static int FirstInRanges<T>(ReadOnlySpan<T> values, T low1, T high1, T low2, T high2) where T : IComparable<T>
    {
        int first = values.IndexOfAnyInRange(low1, high1);
        int second = values[..(first < 0 ? values.Length : first)].IndexOfAnyInRange(low2, high2); // only before the first
        return second >= 0 ? second : first;
    }

    private static string Keys(ReadOnlySpan<WeightDelta> deltas)
    {
        var keys = new string[deltas.Length];
        for (int i = 0; i < keys.Length; i++)
        {
            keys[i] = $"'{deltas[i].Module.Key}'";
        }
        return string.Join(", ", keys);
    }
}
