using Sd.Loaders.Layout;

namespace Sd.Loaders.Tests;

/// <summary>make-random-model writes a new folder: never over a model, never into a file or a missing parent.</summary>
public sealed class RandomModelFolderTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Only_a_new_or_empty_folder_is_accepted()
    {
        string fresh = _dir.File("fresh"), empty = _dir.File("empty");
        Directory.CreateDirectory(empty);
        Assert.Equal(fresh, RandomModelWriter.CheckNewFolder(fresh));
        Assert.Equal(empty, RandomModelWriter.CheckNewFolder(empty + Path.DirectorySeparatorChar));
        _dir.Write(Path.Combine("model", "model_index.json"), [1]);
        Assert.Contains("is not empty", Assert.Throws<IOException>(() => RandomModelWriter.CheckNewFolder(_dir.File("model"))).Message);
        string file = _dir.Write("file", [1]);
        Assert.Contains("is a file", Assert.Throws<IOException>(() => RandomModelWriter.CheckNewFolder(file)).Message);
        Assert.Throws<DirectoryNotFoundException>(() => RandomModelWriter.CheckNewFolder(_dir.File(Path.Combine("no", "model"))));
    }
}
