using System.Runtime.InteropServices;
using System.Text.Json;
using Sd.Engine.Modules;
using Sd.Kernels.Gemm;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Lora;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Tests;
using Sd.Loaders.Weights;

namespace Sd.Engine.Tests;

/// <summary>
/// LoRA modules merged into weights as they load: float32 weights get W + scale x alpha/rank x up x down as the
/// float64 restatement gives it (to float32 rounding), whichever way a module reads them (Load, Stage, and
/// StageNative's 16-bit path, where F16 and BF16 weights stay 16-bit, rounded once); a weight of 0 changes no bit;
/// Inf/NaN and 16-bit overflow are refused naming the module; a change nothing merged is refused.
/// </summary>
public sealed unsafe class LoraMergeTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Float32_weights_get_the_float64_merge_of_stacked_loras()
    {
        long[] linear = [40, 24], conv = [8, 6, 3, 3];
        float[] w = TinyVariant.RandomWeights(linear, 1), c = TinyVariant.RandomWeights(conv, 2);
        var one = new LoraWriter();
        LoraWriter.Module a = one.Add(ModelComponent.Unet, "proj.weight", linear, rank: 3, alpha: 1.5f, seed: 3);
        LoraWriter.Module k = one.Add(ModelComponent.Unet, "conv.weight", conv, rank: 4, alpha: null, seed: 4);
        var two = new LoraWriter();
        LoraWriter.Module b = two.Add(ModelComponent.Unet, "proj.weight", linear, rank: 5, alpha: null, seed: 5, kohya: false);
        using SafetensorsFile model = Model(("proj.weight", linear, w, TensorDType.F32), ("conv.weight", conv, c, TensorDType.F32));
        using LoraFile first = LoraFile.Open(one.Save(_dir.File("one.safetensors")));
        using LoraFile second = LoraFile.Open(two.Save(_dir.File("two.safetensors")));
        using var binder = new WeightBinder(LoraTargets.Apply(WeightsOf(model), ModelComponent.Unet, [(first, 0.8f), (second, -0.3f)]));

        using Tensors.NativeBlock loaded = binder.Child("proj").Load("weight", linear);
        AssertNear(LoraWriter.Merged(w, linear, (a, 0.8f), (b, -0.3f)), loaded.Span);
        float* staged = binder.Child("conv").Stage(["weight"], conv);
        AssertNear(LoraWriter.Merged(c, conv, (k, 0.8f)), new ReadOnlySpan<float>(staged, c.Length));
        binder.RequireAllUsed();
    }

    [Theory]
    [InlineData(TensorDType.F16)]
    [InlineData(TensorDType.BF16)]
    public void Sixteen_bit_weights_stay_16_bit_merged_and_rounded_once(TensorDType dtype)
    {
        long[] shape = [40, 24];
        float[] w = Array.ConvertAll(TinyVariant.RandomWeights(shape, 6), v => Widen(Narrow(v, dtype), dtype));
        var writer = new LoraWriter();
        LoraWriter.Module m = writer.Add(ModelComponent.Unet, "to_q.weight", shape, rank: 4, alpha: 8f, seed: 7, dtype: TensorDType.F16);
        using SafetensorsFile model = Model(("to_q.weight", shape, w, dtype), ("to_k.weight", shape, w, dtype));
        using LoraFile lora = LoraFile.Open(writer.Save(_dir.File("lora.safetensors")));
        using var binder = new WeightBinder(LoraTargets.Apply(WeightsOf(model), ModelComponent.Unet, [(lora, 0.5f)]));

        // A fused pair as attention reads it: the changed to_q and the unchanged to_k, end to end, still 16-bit.
        ushort* bits = (ushort*)binder.StageNative(["to_q.weight", "to_k.weight"], shape, out WeightFormat format);
        Assert.Equal(dtype == TensorDType.F16 ? WeightFormat.F16 : WeightFormat.BF16, format);
        float[] expected = LoraWriter.Merged(w, shape, (m, 0.5f));
        int rounded = 0;
        for (int i = 0; i < w.Length; i++)
        {
            ushort want = Narrow(expected[i], dtype);
            Assert.True(Math.Abs(bits[i] - want) <= 1, $"element {i}: {bits[i]:X4}, expected {want:X4}");
            rounded += bits[i] == want ? 1 : 0;
            Assert.Equal(Narrow(w[i], dtype), bits[w.Length + i]);
        }
        Assert.True(rounded >= w.Length - 4, $"{w.Length - rounded} of {w.Length} elements off by one unit"); // only float32 ties round apart
        Assert.NotEqual(Narrow(w[0], dtype), bits[0]);
    }

    /// <summary>The cases of Data/lycoris-reference.json: each type's update as A1111 computes it.</summary>
    public static TheoryData<string> LycorisCases() => new()
    {
        "locon_tucker", "loha_linear", "loha_conv_flat", "loha_conv_4d", "loha_conv_tucker", "lokr_linear",
        "lokr_linear_both", "lokr_conv_full", "lokr_conv_flat", "lokr_conv_tucker", "full_conv", "norm",
    };

    /// <summary>
    /// LyCORIS's types merge as A1111 merges them: the reference holds a weight, a bias, a module's float32 tensors and
    /// W + multiplier x update (with the bias's change for full and norm modules), computed in float64 by A1111's own
    /// functions (lyco_helpers, network_lora/hada/lokr/full/norm calc_updown, finalize_updown's scale) on PyTorch.
    /// Sd computes in float32, so each element may differ by float32 rounding of the sums: 1e-6 of the case's largest value.
    /// </summary>
    [Theory]
    [MemberData(nameof(LycorisCases))]
    public void Lycoris_types_merge_as_A1111_merges_them(string name) => MergesAsReferenced("lycoris-reference.json", name);

    /// <summary>The cases of Data/dora-reference.json (written by Data/dora-reference.py).</summary>
    public static TheoryData<string> DoraCases() => new()
    {
        "lora_linear_per_output", "lora_linear_per_input", "locon_conv_per_input", "locon_conv_per_output", "lora_square_per_input",
        "lora_linear_vector_per_output", "comfy_conv_per_output", "loha_per_output", "loha_per_output_full", "lokr_per_input",
        "peft_linear", "peft_conv", "peft_linear_half",
    };

    /// <summary>
    /// DoRA modules merge as the tools that make them compute them (Data/dora-reference.py says how): kohya- and
    /// ComfyUI-named dora_scale per output row ([out, 1], [out], [out, 1, 1, 1]) and per input channel (a square
    /// weight's [1, in] too), with LoRA, LoCon, LoHa and LoKr updates, as LyCORIS merges them at strength 1 and blended
    /// as ComfyUI blends at other strengths (LyCORIS's norms of W + update); diffusers-named lora_magnitude_vector (with
    /// and without ".weight") as PEFT merges it at strength 1, a conv's [1, out, 1, 1] per output row though out = in,
    /// its alpha from the file's config. Float64 references on PyTorch, compared to 1e-6 of the largest value as above.
    /// </summary>
    [Theory]
    [MemberData(nameof(DoraCases))]
    public void Dora_modules_merge_as_LyCORIS_ComfyUI_and_PEFT_merge_them(string name) => MergesAsReferenced("dora-reference.json", name);

    /// <summary>Writes a reference case's module as a LoRA file (its tensors under the case's prefix, its metadata) and merges it.</summary>
    private void MergesAsReferenced(string file, string name)
    {
        using var document = ReferenceData.Json(file);
        JsonElement reference = default;
        foreach (JsonElement c in document.RootElement.GetProperty("cases").EnumerateArray())
        {
            if (c.GetProperty("name").GetString() == name) reference = c;
        }
        Assert.Equal(JsonValueKind.Object, reference.ValueKind);
        long[] shape = Longs(reference.GetProperty("weight").GetProperty("shape"));
        float[] bias = Floats(reference.GetProperty("bias"));
        using SafetensorsFile model = Model(("m.weight", shape, Floats(reference.GetProperty("weight").GetProperty("values")), TensorDType.F32),
            ("m.bias", [shape[0]], bias, TensorDType.F32));
        var writer = new SafetensorsWriter();
        string prefix = reference.TryGetProperty("prefix", out JsonElement p) ? p.GetString()! : "lora_unet_m.";
        foreach (JsonProperty tensor in reference.GetProperty("tensors").EnumerateObject())
        {
            writer.AddFloat32(prefix + tensor.Name, Longs(tensor.Value.GetProperty("shape")), Floats(tensor.Value.GetProperty("values")));
        }
        if (reference.TryGetProperty("metadata", out JsonElement metadata))
        {
            foreach (JsonProperty entry in metadata.EnumerateObject()) writer.AddMetadata(entry.Name, entry.Value.GetString()!);
        }
        string path = _dir.File(name + ".safetensors");
        writer.Save(path);
        using LoraFile lora = LoraFile.Open(path);
        float multiplier = (float)reference.GetProperty("multiplier").GetDouble();
        using var binder = new WeightBinder(LoraTargets.Apply(WeightsOf(model), ModelComponent.Unet, [(lora, multiplier)]));

        using Tensors.NativeBlock weight = binder.Child("m").Load("weight", shape);
        using Tensors.NativeBlock merged = binder.Child("m").Load("bias", [shape[0]]);
        AssertClose(Doubles(reference.GetProperty("merged")), weight.Span);
        AssertClose(Doubles(reference.GetProperty("merged_bias")), merged.Span);
        binder.RequireAllUsed();
    }

    private static void AssertClose(double[] expected, ReadOnlySpan<float> actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        double largest = 0;
        foreach (double v in expected) largest = Math.Max(largest, Math.Abs(v));
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-6 * largest, $"element {i}: {actual[i]}, expected {expected[i]} (largest {largest})");
        }
    }

    private static double[] Doubles(JsonElement array)
    {
        var values = new double[array.GetArrayLength()];
        int i = 0;
        foreach (JsonElement v in array.EnumerateArray()) values[i++] = v.GetDouble();
        return values;
    }

    private static float[] Floats(JsonElement array) => Array.ConvertAll(Doubles(array), v => (float)v);

    private static long[] Longs(JsonElement array) => Array.ConvertAll(Doubles(array), v => (long)v);

    [Fact]
    public void A_lora_at_weight_zero_changes_no_bit()
    {
        long[] shape = [16, 8];
        float[] w = TinyVariant.RandomWeights(shape, 8);
        var writer = new LoraWriter();
        writer.Add(ModelComponent.Unet, "a.weight", shape, rank: 2, alpha: null, seed: 9);
        writer.Add(ModelComponent.Unet, "b.weight", shape, rank: 2, alpha: null, seed: 10);
        using SafetensorsFile model = Model(("a.weight", shape, w, TensorDType.F32), ("b.weight", shape, w, TensorDType.F16));
        using LoraFile lora = LoraFile.Open(writer.Save(_dir.File("zero.safetensors")));
        using var binder = new WeightBinder(LoraTargets.Apply(WeightsOf(model), ModelComponent.Unet, [(lora, 0f)]));

        Assert.Equal(w, new ReadOnlySpan<float>(binder.Stage(["a.weight"], shape), w.Length).ToArray());
        ushort* bits = (ushort*)binder.StageNative(["b.weight"], shape, out _);
        for (int i = 0; i < w.Length; i++)
        {
            Assert.Equal(Narrow(w[i], TensorDType.F16), bits[i]);
        }
    }

    /// <summary>
    /// A DoRA module at strength 1 leaves each output row with its magnitude's norm (to float32's epsilon), whatever the
    /// LoRAs before it changed, since LoRAs merge in order; a LoRA after it moves the norms; at strength 0 no bit changes.
    /// </summary>
    [Fact]
    public void A_dora_module_normalises_the_weight_the_loras_before_it_left()
    {
        long[] shape = [16, 8];
        float[] w = TinyVariant.RandomWeights(shape, 11);
        var plain = new LoraWriter();
        plain.Add(ModelComponent.Unet, "proj.weight", shape, rank: 3, alpha: null, seed: 12);
        var dora = new LoraWriter();
        dora.Add(ModelComponent.Unet, "proj.weight", shape, rank: 2, alpha: 1f, seed: 13);
        float[] magnitude = Enumerable.Range(0, 16).Select(i => 0.5f + i / 8f).ToArray();
        dora.AddRaw("lora_unet_proj.dora_scale", [16, 1], magnitude);
        using SafetensorsFile model = Model(("proj.weight", shape, w, TensorDType.F32));
        using LoraFile first = LoraFile.Open(plain.Save(_dir.File("plain.safetensors")));
        using LoraFile second = LoraFile.Open(dora.Save(_dir.File("dora.safetensors")));

        double[] RowNorms(params (LoraFile, float)[] loras)
        {
            using var binder = new WeightBinder(LoraTargets.Apply(WeightsOf(model), ModelComponent.Unet, loras));
            using Tensors.NativeBlock merged = binder.Child("proj").Load("weight", shape);
            return Enumerable.Range(0, 16).Select(r => Math.Sqrt(Enumerable.Range(0, 8).Sum(c => (double)merged.Span[r * 8 + c] * merged.Span[r * 8 + c]))).ToArray();
        }
        double[] last = RowNorms((first, 0.8f), (second, 1f)), before = RowNorms((second, 1f), (first, 0.8f));
        for (int r = 0; r < 16; r++)
        {
            Assert.True(Math.Abs(last[r] - magnitude[r]) <= 1e-6 * magnitude[r], $"row {r}: norm {last[r]}, magnitude {magnitude[r]}");
        }
        Assert.True(Enumerable.Range(0, 16).Count(r => Math.Abs(before[r] - magnitude[r]) > 1e-3) >= 12, string.Join(", ", before));

        using var zero = new WeightBinder(LoraTargets.Apply(WeightsOf(model), ModelComponent.Unet, [(second, 0f)]));
        Assert.Equal(w, new ReadOnlySpan<float>(zero.Stage(["proj.weight"], shape), w.Length).ToArray());
    }

    /// <summary>
    /// A DoRA module merges into 16-bit weights as into float32 ones, rounded once; its bias difference is added, not
    /// decomposed; a NaN magnitude is refused naming the module.
    /// </summary>
    [Theory]
    [InlineData(TensorDType.F16)]
    [InlineData(TensorDType.BF16)]
    public void Dora_merges_16_bit_weights_and_bias_differences_and_refuses_a_nan_magnitude(TensorDType dtype)
    {
        long[] shape = [16, 8];
        float[] w = Array.ConvertAll(TinyVariant.RandomWeights(shape, 14), v => Widen(Narrow(v, dtype), dtype));
        float[] magnitude = Enumerable.Range(0, 8).Select(i => 0.25f + i / 4f).ToArray(), bias = Enumerable.Range(0, 16).Select(i => i / 16f).ToArray();
        var writer = new LoraWriter();
        foreach (string name in (string[])["wide", "half"])
        {
            writer.Add(ModelComponent.Unet, name + ".weight", shape, rank: 2, alpha: 4f, seed: 15);
            writer.AddRaw($"lora_unet_{name}.dora_scale", [1, 8], magnitude);
            writer.AddRaw($"lora_unet_{name}.diff_b", [16], bias);
        }
        using SafetensorsFile model = Model(("wide.weight", shape, w, TensorDType.F32), ("wide.bias", [16], new float[16], TensorDType.F32),
            ("half.weight", shape, w, dtype), ("half.bias", [16], new float[16], TensorDType.F32));
        using LoraFile lora = LoraFile.Open(writer.Save(_dir.File("dora16.safetensors")));
        using var binder = new WeightBinder(LoraTargets.Apply(WeightsOf(model), ModelComponent.Unet, [(lora, 0.6f)]));

        using Tensors.NativeBlock wide = binder.Child("wide").Load("weight", shape);
        ushort* bits = (ushort*)binder.StageNative(["half.weight"], shape, out WeightFormat format);
        Assert.Equal(dtype == TensorDType.F16 ? WeightFormat.F16 : WeightFormat.BF16, format);
        for (int i = 0; i < w.Length; i++)
        {
            Assert.True(Math.Abs(bits[i] - Narrow(wide.Span[i], dtype)) <= 1, $"element {i}: {bits[i]:X4}, float32's {wide.Span[i]}");
        }
        Assert.NotEqual(Narrow(w[0], dtype), bits[0]);
        using Tensors.NativeBlock merged = binder.Child("half").Load("bias", [16]);
        Assert.Equal(Array.ConvertAll(bias, b => 0.6f * b), merged.Span.ToArray());

        var nan = new LoraWriter();
        nan.Add(ModelComponent.Unet, "wide.weight", shape, rank: 2, alpha: 4f, seed: 15);
        nan.AddRaw("lora_unet_wide.dora_scale", [16, 1], Enumerable.Repeat(float.NaN, 16).ToArray());
        using LoraFile bad = LoraFile.Open(nan.Save(_dir.File("nan-dora.safetensors")));
        using var nanBinder = new WeightBinder(LoraTargets.Apply(WeightsOf(model), ModelComponent.Unet, [(bad, 1f)]));
        var e = Assert.Throws<InvalidFileException>(() => nanBinder.Stage(["wide.weight"], shape));
        Assert.Contains("merging LoRA module(s) 'lora_unet_wide' into 'wide.weight' gives NaN", e.Message);
    }

    [Fact]
    public void Nan_in_a_lora_and_float16_overflow_are_refused_naming_the_module()
    {
        long[] shape = [4, 4];
        var nan = new LoraWriter();
        nan.AddRaw("lora_unet_w.lora_down.weight", [1, 4], [1f, float.NaN, 0f, 0f]);
        nan.AddRaw("lora_unet_w.lora_up.weight", [4, 1], [1f, 1f, 1f, 1f]);
        var big = new LoraWriter();
        big.AddRaw("lora_unet_w.lora_down.weight", [1, 4], [300f, 0f, 0f, 0f]);
        big.AddRaw("lora_unet_w.lora_up.weight", [4, 1], [300f, 0f, 0f, 0f]);
        using SafetensorsFile model = Model(("w.weight", shape, new float[16], TensorDType.F16));
        using LoraFile bad = LoraFile.Open(nan.Save(_dir.File("nan.safetensors")));
        using LoraFile huge = LoraFile.Open(big.Save(_dir.File("big.safetensors")));

        using var nanBinder = new WeightBinder(LoraTargets.Apply(WeightsOf(model), ModelComponent.Unet, [(bad, 1f)]));
        var e = Assert.Throws<InvalidFileException>(() => nanBinder.Stage(["w.weight"], shape));
        Assert.Contains("merging LoRA module(s) 'lora_unet_w' into 'w.weight' gives NaN", e.Message);
        using var bigBinder = new WeightBinder(LoraTargets.Apply(WeightsOf(model), ModelComponent.Unet, [(huge, 1f)]));
        e = Assert.Throws<InvalidFileException>(() => bigBinder.StageNative(["w.weight"], shape, out _));
        Assert.Contains("gives 90000 at element 0, beyond float16's range", e.Message);
    }

    [Fact]
    public void Negative_overflow_past_the_first_element_is_found_in_both_16_bit_formats()
    {
        long[] shape = [4, 4];
        foreach ((TensorDType dtype, float down, float up, string expected) in new[]
        {
            (TensorDType.F16, 300f, -300f, "gives -90000 at element 4, beyond float16's range"),
            (TensorDType.BF16, 1e19f, -3.4e19f, "at element 4, beyond bfloat16's range"), // -3.4e38: finite, but rounds to -Inf
        })
        {
            var writer = new LoraWriter();
            writer.AddRaw("lora_unet_w.lora_down.weight", [1, 4], [down, 0f, 0f, 0f]);
            writer.AddRaw("lora_unet_w.lora_up.weight", [4, 1], [0f, up, 0f, 0f]);
            using SafetensorsFile model = Model(("w.weight", shape, new float[16], dtype));
            using LoraFile lora = LoraFile.Open(writer.Save(_dir.File($"{dtype}.safetensors")));
            using var binder = new WeightBinder(LoraTargets.Apply(WeightsOf(model), ModelComponent.Unet, [(lora, 1f)]));
            var e = Assert.Throws<InvalidFileException>(() => binder.StageNative(["w.weight"], shape, out _));
            Assert.Contains(expected, e.Message);
        }
    }

    [Fact]
    public void A_change_to_a_weight_the_model_never_loads_is_refused()
    {
        long[] shape = [4, 4];
        var writer = new LoraWriter();
        writer.Add(ModelComponent.Unet, "w.weight", shape, rank: 1, alpha: null, seed: 11);
        using SafetensorsFile model = Model(("w.weight", shape, new float[16], TensorDType.F32));
        using LoraFile lora = LoraFile.Open(writer.Save(_dir.File("lora.safetensors")));
        using var binder = new WeightBinder(LoraTargets.Apply(WeightsOf(model), ModelComponent.Unet, [(lora, 1f)]));

        binder.Entry("w.weight", shape); // looked at, never loaded
        var e = Assert.Throws<InvalidFileException>(binder.RequireAllUsed);
        Assert.Contains("LoRA module 'lora_unet_w' changes 'w.weight', which the model does not load", e.Message);
    }

    private static void AssertNear(float[] expected, ReadOnlySpan<float> actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-6, $"element {i}: {actual[i]}, expected {expected[i]}");
        }
    }

    private static ushort Narrow(float value, TensorDType dtype) => dtype == TensorDType.F16
        ? BitConverter.HalfToUInt16Bits((Half)value)
        : (ushort)((BitConverter.SingleToUInt32Bits(value) + 0x7FFFu + ((BitConverter.SingleToUInt32Bits(value) >> 16) & 1)) >> 16);

    private static float Widen(ushort bits, TensorDType dtype) =>
        dtype == TensorDType.F16 ? (float)BitConverter.UInt16BitsToHalf(bits) : BitConverter.UInt32BitsToSingle((uint)bits << 16);

    /// <summary>A model file of the given tensors, 16-bit ones narrowed to nearest.</summary>
    private SafetensorsFile Model(params (string Name, long[] Shape, float[] Values, TensorDType DType)[] tensors)
    {
        var writer = new SafetensorsWriter();
        foreach ((string name, long[] shape, float[] values, TensorDType dtype) in tensors)
        {
            if (dtype == TensorDType.F32)
            {
                writer.AddFloat32(name, shape, values);
            }
            else
            {
                ushort[] bits = Array.ConvertAll(values, v => Narrow(v, dtype));
                writer.Add(name, dtype, shape, MemoryMarshal.AsBytes(bits.AsSpan()));
            }
        }
        string path = _dir.File($"model-{Guid.NewGuid():N}.safetensors");
        writer.Save(path);
        return SafetensorsFile.Open(path);
    }

    private static WeightSet WeightsOf(SafetensorsFile file) => WeightBinderTests.WeightsOf(file);
}
