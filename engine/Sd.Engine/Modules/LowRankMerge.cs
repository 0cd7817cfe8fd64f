using Sd.Engine.Tensors;
using Sd.Kernels.Convert;
using Sd.Kernels.Gemm;
using Sd.Kernels.Layout;
using Sd.Loaders;
using Sd.Loaders.Weights;

namespace Sd.Engine.Modules;

/// <summary>
/// Merges low-rank changes (LoRA modules) into a weight as it is loaded, so the model runs at its usual speed:
/// W [out, rest] += s x up [out, rank] x down [rank, rest], by the packed GEMM (C = A B^T + C with A = s x up and
/// B = down^T). 16-bit weights are merged in float32 and rounded back to their format (to nearest even), as
/// diffusers' fuse_lora leaves a float16 model float16, so they keep their half-size memory and GEMM path; the
/// rounding and the Inf/NaN and range checks are vectorized (<see cref="Narrow"/>), so they cost little beside the GEMM.
/// Reference: diffusers LoraLoaderMixin.fuse_lora (PEFT LoraLayer.merge): W + scale x (B @ A).
/// </summary>
internal static unsafe class LowRankMerge
{
    /// <summary>Merges into float32 weights <paramref name="w"/> (the entry's element count).</summary>
    public static void Apply(TensorEntry entry, float* w, ReadOnlySpan<WeightDelta> deltas)
    {
        int outputs = checked((int)entry.Shape[0]);
        int rest = checked((int)(entry.ElementCount / outputs));
        foreach (WeightDelta delta in deltas)
        {
            int rank = delta.Module.Rank;
            using var up = new NativeBlock((long)outputs * rank, zero: false);
            using var down = new NativeBlock((long)rank * rest, zero: false);
            using var downT = new NativeBlock((long)rest * rank, zero: false);
            delta.File.ReadFloat32(delta.Module.Up, up.Span); // [out, rank]
            delta.File.ReadFloat32(delta.Module.Down, down.Span); // [rank, rest]
            for (long i = 0; i < up.Length; i++)
            {
                up.Pointer[i] *= delta.Scale;
            }
            TransposeKernels.Transpose_Tiled(down.Pointer, downT.Pointer, rank, rest); // [rest, rank]: the GEMM's W
            using PackedWeights packed = PackedWeights.Pack(downT.Pointer, rest, rank, rank);
            GemmKernels.Multiply(outputs, up.Pointer, rank, packed, w, rest, bias: null, residual: w, ldr: rest);
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
