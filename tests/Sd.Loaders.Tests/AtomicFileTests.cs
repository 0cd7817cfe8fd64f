using Sd.Loaders.IO;

namespace Sd.Loaders.Tests;

/// <summary>Where an atomic write lands, and what it refuses to replace.</summary>
public sealed class AtomicFileTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void A_missing_folder_is_named_with_the_path_given_not_the_temporary_file()
    {
        string path = _dir.File(Path.Combine("nowhere", "x.npy"));
        var e = Assert.Throws<DirectoryNotFoundException>(() => AtomicFile.Write(path, s => s.WriteByte(1)));
        Assert.Equal($"{path}: the folder {_dir.File("nowhere")} does not exist", e.Message);
    }

    [Fact]
    public void A_folder_is_not_replaced()
    {
        Assert.Contains("names a directory", Assert.Throws<ArgumentException>(() => AtomicFile.CheckTarget(_dir.Path)).Message);
        Assert.Throws<ArgumentException>(() => AtomicFile.CheckTarget(""));
    }

    [UnixFact]
    public void A_link_is_written_through_and_devices_are_refused()
    {
        string target = _dir.Write("target.bin", [9]), link = _dir.File("link.bin");
        File.CreateSymbolicLink(link, target);
        Assert.Equal(target, AtomicFile.CheckTarget(link));
        AtomicFile.Write(link, s => s.Write([1, 2]));
        Assert.Equal(target, new FileInfo(link).LinkTarget);
        Assert.Equal([1, 2], File.ReadAllBytes(target));
        Assert.Equal(["link.bin", "target.bin"], Directory.GetFiles(_dir.Path).Select(Path.GetFileName).Order());

        foreach (string device in new[] { "/dev/null", "/dev/stdout" })
        {
            Assert.Contains("device or system file", Assert.Throws<ArgumentException>(() => AtomicFile.Write(device, s => s.WriteByte(1))).Message);
        }
        string toDevice = _dir.File("null");
        File.CreateSymbolicLink(toDevice, "/dev/null");
        Assert.Contains("device or system file (/dev/null)", Assert.Throws<ArgumentException>(() => AtomicFile.CheckTarget(toDevice)).Message);
        string devices = _dir.File("devices");
        Directory.CreateSymbolicLink(devices, "/dev");
        Assert.Contains("device or system file (/dev/zero)", Assert.Throws<ArgumentException>(() => AtomicFile.CheckTarget(Path.Combine(devices, "zero"))).Message);
        Assert.Throws<ArgumentException>(() => AtomicFile.CheckTarget("/proc/self/environ"));
        if (Directory.Exists("/dev/shm"))
        {
            Assert.Equal("/dev/shm/sd-output.png", AtomicFile.CheckTarget("/dev/shm/sd-output.png")); // an ordinary tmpfs
        }
    }

    [UnixFact]
    public void A_loop_of_links_is_refused()
    {
        string a = _dir.File("a"), b = _dir.File("b");
        File.CreateSymbolicLink(a, b);
        File.CreateSymbolicLink(b, a);
        Assert.Contains("more than 40 symbolic links", Assert.Throws<IOException>(() => AtomicFile.CheckTarget(a)).Message);
    }
}
