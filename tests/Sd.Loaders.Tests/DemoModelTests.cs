using Sd.Loaders.Checkpoints;
using Sd.Loaders.Layout;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Weights;

namespace Sd.Loaders.Tests;

/// <summary>
/// The built-in demo model's loader side: safetensors files made in memory are the files the writer would save, and
/// the demo source holds every parameter its configs call for, the same on every run.
/// </summary>
public sealed class DemoModelTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void An_in_memory_file_is_the_file_the_writer_saves()
    {
        var writer = new SafetensorsWriter();
        writer.AddFloat32("a", [2, 3], [1, 2, 3, 4, 5, 6]);
        writer.AddGenerated("b", TensorDType.F16, [5], bytes => bytes.Fill(0x3C));
        writer.AddMetadata("note", "in memory");
        string path = _dir.File("w.safetensors");
        writer.Save(path);
        Assert.Equal(new FileInfo(path).Length, writer.Length);

        using var saved = SafetensorsFile.Open(path);
        using var memory = SafetensorsFile.InMemory("memory#w", writer);
        Assert.Equal("memory#w", memory.Path);
        Assert.Equal(saved.Metadata, memory.Metadata);
        Assert.Equal(saved.Tensors.Select(t => t.ToString()), memory.Tensors.Select(t => t.ToString()));
        for (int i = 0; i < saved.Tensors.Count; i++)
        {
            Assert.True(saved.GetBytes(saved.Tensors[i]).SequenceEqual(memory.GetBytes(memory.Tensors[i])));
        }
        // Releasing pages would zero anonymous memory; an in-memory file keeps its bytes.
        memory.ReleasePages(memory.Tensors[0]);
        Assert.Equal([1f, 2, 3, 4, 5, 6], ReadFloat32(memory, 0));
    }

    [Fact]
    public void The_demo_source_has_every_parameter_of_its_configs_in_float32()
    {
        using ModelSource demo = ModelSource.Demo();
        Assert.Equal(ModelSourceKind.BuiltInDemo, demo.Kind);
        Assert.Equal(DemoModel.Name, demo.Path);
        Assert.Equal([ModelComponent.Unet, ModelComponent.Vae, ModelComponent.TextEncoder], demo.Components);
        Assert.Null(demo.Tokenizer);
        Assert.NotNull(demo.Scheduler);
        long parameters = 0;
        foreach ((ModelComponent component, List<ParameterSpec> layout, _) in DemoModel.Components())
        {
            WeightSet weights = demo.Weights(component);
            Assert.Equal(layout.Count, weights.Count);
            foreach (ParameterSpec spec in layout)
            {
                Assert.Equal(TensorDType.F32, weights.Require(spec.Name, spec.Shape).DType);
            }
            parameters += weights.ParameterCount;
        }
        Assert.InRange(parameters, 100_000, 2_000_000); // a toy: megabytes, made in milliseconds
    }

    [Fact]
    public void The_demo_weights_are_the_same_on_every_load_and_finite()
    {
        using ModelSource first = ModelSource.Demo();
        using ModelSource second = ModelSource.Demo();
        foreach (ModelComponent component in first.Components)
        {
            IReadOnlyList<TensorEntry> a = first.Weights(component).Entries, b = second.Weights(component).Entries;
            for (int i = 0; i < a.Count; i++)
            {
                float[] values = a[i].ReadFloat32();
                Assert.Equal(values, b[i].ReadFloat32());
                Assert.All(values, v => Assert.True(float.IsFinite(v) && Math.Abs(v) <= 2, $"{a[i].Name}: {v}"));
            }
        }
    }

    private static float[] ReadFloat32(SafetensorsFile file, int index)
    {
        var values = new float[file.Tensors[index].ElementCount];
        file.ReadFloat32(file.Tensors[index], values);
        return values;
    }
}
