using Sd.Loaders.Safetensors;

namespace Sd.Loaders.Tests;

/// <summary>
/// Single files whose shapes or key counts lie: config inference must fail naming the file and the tensor or count,
/// without overflowing and without scanning every key once per layer index. Tensors are zero-sized where the test
/// allows, so the files stay small however many there are.
/// </summary>
public sealed class InferredConfigLimitsTests : IDisposable
{
    private const string TextModel = "cond_stage_model.transformer.text_model.";
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private string Write(IEnumerable<(string Name, long[] Shape)> tensors)
    {
        var writer = new SafetensorsWriter();
        foreach ((string name, long[] shape) in tensors)
        {
            long count = 1;
            foreach (long d in shape)
            {
                count *= d;
            }
            writer.Add(name, TensorDType.F32, shape, new byte[count * sizeof(float)]);
        }
        string path = _dir.File("model.safetensors");
        using (FileStream stream = File.Create(path))
        {
            writer.Write(stream);
        }
        return path;
    }

    private InvalidFileException Refused(IEnumerable<(string Name, long[] Shape)> tensors)
    {
        string path = Write(tensors);
        var e = Assert.Throws<InvalidFileException>(() => ModelSource.Open(path).Dispose());
        Assert.Contains(path, e.Message);
        return e;
    }

    [Fact]
    public void A_width_past_int_is_refused_naming_the_tensor()
    {
        var e = Refused([($"{TextModel}embeddings.token_embedding.weight", [0, 2147483648L])]);
        Assert.Contains("'text_model.embeddings.token_embedding.weight' has size 2147483648 along axis 1", e.Message);
    }

    [Fact]
    public void A_zero_width_is_refused_naming_the_tensor()
    {
        var e = Refused([($"{TextModel}embeddings.token_embedding.weight", [8, 0])]);
        Assert.Contains("'text_model.embeddings.token_embedding.weight' has size 0 along axis 1", e.Message);
    }

    [Fact]
    public void A_text_encoder_listing_100000_layers_is_refused_by_count()
    {
        // One key per layer: counting them with a scan of all keys per layer index took minutes.
        const int layers = 100_000;
        var tensors = new List<(string, long[])>
        {
            ($"{TextModel}embeddings.token_embedding.weight", [8, 2]),
            ($"{TextModel}embeddings.position_embedding.weight", [4, 2]),
            ($"{TextModel}encoder.layers.0.mlp.fc1.weight", [8, 2]),
        };
        for (int i = 1; i < layers; i++)
        {
            tensors.Add(($"{TextModel}encoder.layers.{i}.layer_norm1.weight", [0]));
        }
        var e = Refused(tensors);
        Assert.Contains($"'num_hidden_layers' must be in [1, 128], found {layers}", e.Message);
    }
}
