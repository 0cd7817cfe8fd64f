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
/// diffusers' fuse_lora leaves a float16 model float16, so they keep their half-size memory and GEMM path.
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
        for (long i = 0; i < entry.ElementCount; i++)
        {
            if (!float.IsFinite(w[i]))
            {
                throw new InvalidFileException(deltas[0].File.Path,
                    $"merging LoRA module(s) {Keys(deltas)} into '{entry.Name}' gives {w[i]} at element {i}: the LoRA or the weight holds Inf or NaN, or the sum overflows");
            }
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
        for (int i = 0; i < count; i++)
        {
            float value = wide.Pointer[i];
            ushort narrow = format == WeightFormat.F16 ? BitConverter.HalfToUInt16Bits((Half)value) : RoundToBFloat16(value);
            if ((narrow & 0x7FFF) >= (format == WeightFormat.F16 ? 0x7C00 : 0x7F80))
            {
                throw new InvalidFileException(deltas[0].File.Path,
                    $"merging LoRA module(s) {Keys(deltas)} into '{entry.Name}' gives {value} at element {i}, beyond {(format == WeightFormat.F16 ? "float16" : "bfloat16")}'s range");
            }
            bits[i] = narrow;
        }
    }

    /// <summary>Float32 to bfloat16, rounding to nearest even (finite input).</summary>
    private static ushort RoundToBFloat16(float value)
    {
        uint pattern = BitConverter.SingleToUInt32Bits(value);
        return (ushort)((pattern + 0x7FFFu + ((pattern >> 16) & 1)) >> 16);
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
