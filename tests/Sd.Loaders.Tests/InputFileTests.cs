using System.Runtime.InteropServices;
using Sd.Loaders.Config;
using Sd.Loaders.IO;
using Sd.Loaders.Npy;
using Sd.Loaders.Png;
using Sd.Loaders.Safetensors;

namespace Sd.Loaders.Tests;

/// <summary>
/// Paths that name no readable file: every loader refuses them before opening, naming the path, instead of hanging on
/// a pipe or reading a device without end.
/// </summary>
public sealed partial class InputFileTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>Each loader's open, with the kind of file its messages name.</summary>
    public static TheoryData<string, string> Loaders => new()
    {
        { "safetensors", "safetensors file" },
        { "config", "config file" },
        { "npy", ".npy file" },
        { "png", "PNG file" },
    };

    private static void Open(string loader, string path)
    {
        switch (loader)
        {
            case "safetensors": SafetensorsFile.Open(path).Dispose(); break;
            case "config": JsonConfig.Load(path); break;
            case "npy": NpyFile.Read(path); break;
            default: PngFile.Read(path); break;
        }
    }

    [Theory]
    [MemberData(nameof(Loaders))]
    public void A_missing_file_is_not_found(string loader, string what)
    {
        string path = _dir.File("missing");
        var e = Assert.Throws<FileNotFoundException>(() => Open(loader, path));
        Assert.Equal($"{path}: {what} not found", e.Message);
    }

    [Theory]
    [MemberData(nameof(Loaders))]
    public void A_folder_is_not_a_file(string loader, string what)
    {
        var e = Assert.Throws<FileNotFoundException>(() => Open(loader, _dir.Path));
        Assert.Equal($"{_dir.Path}: is a folder, not a {what}", e.Message);
    }

    [Theory]
    [MemberData(nameof(Loaders))]
    public void An_empty_file_is_refused(string loader, string what)
    {
        string path = _dir.Write("empty", []);
        var e = Assert.Throws<InvalidFileException>(() => Open(loader, path));
        Assert.Equal($"{path}: {what} is empty (0 bytes), or is a pipe or device rather than a file", e.Message);
    }

    [UnixFact]
    public void A_device_is_refused_before_it_is_read() =>
        Assert.Contains("pipe or device", Assert.Throws<InvalidFileException>(() => JsonConfig.Load("/dev/zero")).Message);

    [UnixFact]
    public void A_pipe_is_refused_without_waiting_for_a_writer()
    {
        string path = _dir.File("pipe");
        Assert.Equal(0, MakeFifo(path, 0b110_000_000));
        // Opening a pipe for reading would block until a writer opened it: the loader must not get that far.
        var open = Task.Run(() => Assert.Throws<InvalidFileException>(() => SafetensorsFile.Open(path)));
        Assert.True(open.Wait(TimeSpan.FromMinutes(1)), "opening a pipe did not return");
        Assert.Contains("pipe or device", open.Result.Message);
    }

    [UnixFact]
    public void A_link_is_checked_by_the_file_it_names()
    {
        string pipe = _dir.File("pipe"), toPipe = _dir.File("to-pipe.npy"), toZero = _dir.File("to-zero.json");
        Assert.Equal(0, MakeFifo(pipe, 0b110_000_000));
        File.CreateSymbolicLink(toPipe, pipe);
        File.CreateSymbolicLink(toZero, "/dev/zero");
        var open = Task.Run(() => Assert.Throws<InvalidFileException>(() => NpyFile.Read(toPipe)));
        Assert.True(open.Wait(TimeSpan.FromMinutes(1)), "opening a link to a pipe did not return");
        Assert.Contains("pipe or device", open.Result.Message);
        Assert.Contains("pipe or device", Assert.Throws<InvalidFileException>(() => JsonConfig.Load(toZero)).Message);
        // The limit applies to the file, not to the link's few bytes.
        string big = _dir.Write("big", new byte[11]), toBig = _dir.File("to-big");
        File.CreateSymbolicLink(toBig, big);
        Assert.Contains("11 bytes", Assert.Throws<InvalidFileException>(() => InputFile.Check(toBig, "thing", maxBytes: 10)).Message);
    }

    [Fact]
    public void A_file_over_the_limit_is_refused()
    {
        string path = _dir.Write("big", new byte[11]);
        var e = Assert.Throws<InvalidFileException>(() => InputFile.Check(path, "thing", maxBytes: 10));
        Assert.Equal($"{path}: thing is 11 bytes; more than 10 is not a thing", e.Message);
        Assert.Equal(10, InputFile.Check(_dir.Write("ok", new byte[10]), "thing", maxBytes: 10));
    }

    [UnixNonRootFact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void A_file_this_process_may_not_read_is_denied_not_missing()
    {
        string folder = _dir.File("closed");
        Directory.CreateDirectory(folder);
        string inside = _dir.Write("closed/weights.safetensors", [1]);
        string unreadable = _dir.Write("unreadable.json", [1]);
        File.SetUnixFileMode(unreadable, UnixFileMode.UserWrite);
        File.SetUnixFileMode(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite); // listable, not searchable
        try
        {
            var e = Assert.Throws<UnauthorizedAccessException>(() => SafetensorsFile.Open(inside).Dispose());
            Assert.Equal($"{inside}: safetensors file cannot be read: permission denied", e.Message);
            e = Assert.Throws<UnauthorizedAccessException>(() => JsonConfig.Load(unreadable));
            Assert.Equal($"{unreadable}: config file cannot be read: permission denied", e.Message);
        }
        finally
        {
            File.SetUnixFileMode(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    [Fact]
    public void The_head_of_a_file_is_its_first_bytes_or_all_of_a_short_one()
    {
        var head = new byte[8];
        Assert.Equal(3, InputFile.ReadHead(_dir.Write("short", [1, 2, 3]), "thing", head));
        Assert.Equal(new byte[] { 1, 2, 3 }, head[..3]);
        Assert.Equal(8, InputFile.ReadHead(_dir.Write("long", [.. Enumerable.Range(10, 20).Select(i => (byte)i)]), "thing", head));
        Assert.Equal(17, head[7]);
        Assert.Throws<FileNotFoundException>(() => InputFile.ReadHead(_dir.File("missing"), "thing", head));
    }

    [LibraryImport("libc", EntryPoint = "mkfifo", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int MakeFifo(string path, uint mode);
}
