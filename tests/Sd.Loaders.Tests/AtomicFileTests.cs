using System.IO.Pipes;
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

        // A pipe, as /dev/stdout is under a pipeline (not /dev/stdout itself: where the test runner's output is
        // redirected to a file, that link leads to the regular file, which would then be replaced).
        using var pipe = new AnonymousPipeServerStream(PipeDirection.Out);
        string pipeLink = $"/proc/self/fd/{pipe.SafePipeHandle.DangerousGetHandle()}";
        foreach (string device in new[] { "/dev/null", pipeLink })
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

/// <summary>Several outputs written all together or not at all, and the checks made before any work.</summary>
public sealed class AtomicFileSetTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private string[] Entries() => Directory.GetFileSystemEntries(_dir.Path).Select(Path.GetFileName).Order().ToArray()!;

    [Fact]
    public void A_failing_second_file_leaves_neither_and_no_temporary()
    {
        using (var files = new AtomicFileSet())
        {
            files.Add(_dir.File("a.npy"), s => s.WriteByte(1));
            Assert.Single(Entries()); // the first file's temporary, not yet the file
            Assert.Throws<IOException>(() => files.Add(_dir.File("b.npy"), _ => throw new IOException("No space left on device")));
        }
        Assert.Empty(Entries());
    }

    [Fact]
    public void Commit_renames_every_file_into_place()
    {
        using (var files = new AtomicFileSet())
        {
            files.Add(_dir.File("a.npy"), s => s.WriteByte(1));
            files.Add(_dir.File("b.png"), s => s.WriteByte(2));
            files.Commit();
        }
        Assert.Equal(["a.npy", "b.png"], Entries());
        Assert.Equal([2], File.ReadAllBytes(_dir.File("b.png")));
    }

    [Fact]
    public void Commit_replaces_existing_files_and_leaves_no_copies()
    {
        File.WriteAllBytes(_dir.File("a.npy"), [9]);
        using (var files = new AtomicFileSet())
        {
            files.Add(_dir.File("a.npy"), s => s.WriteByte(1));
            files.Add(_dir.File("b.png"), s => s.WriteByte(2));
            files.Commit();
        }
        Assert.Equal(["a.npy", "b.png"], Entries());
        Assert.Equal([1], File.ReadAllBytes(_dir.File("a.npy")));
    }

    [Fact]
    public void A_failed_commit_puts_back_the_files_it_replaced()
    {
        File.WriteAllBytes(_dir.File("a.npy"), [9]);
        using (var files = new AtomicFileSet())
        {
            files.Add(_dir.File("a.npy"), s => s.WriteByte(1));
            files.Add(_dir.File("b.npy"), s => s.WriteByte(2));
            files.Add(_dir.File("c.png"), s => s.WriteByte(3));
            // c.png becomes a folder after the checks, so its rename fails after a.npy's and b.npy's succeeded.
            Directory.CreateDirectory(_dir.File("c.png"));
            File.WriteAllBytes(Path.Combine(_dir.File("c.png"), "inside"), [0]);
            Assert.Throws<IOException>(files.Commit);
        }
        Assert.Equal(["a.npy", "c.png"], Entries());
        Assert.Equal([9], File.ReadAllBytes(_dir.File("a.npy")));
    }

    [Fact]
    public void A_failure_names_the_path_given_not_the_temporary()
    {
        string path = _dir.File("x.png");
        var e = Assert.Throws<IOException>(() => AtomicFile.Write(path, _ => throw new IOException("disk full")));
        Assert.Equal($"cannot write {path}: disk full", e.Message);
        Assert.Empty(Entries());
    }

    [Fact]
    public void A_name_near_the_file_system_limit_is_written()
    {
        // The temporary no longer repeats the name, which took a 240-character name past 255.
        string path = _dir.File(new string('a', 240) + ".npy");
        AtomicFile.CheckWritable(path, AtomicFile.CheckTarget(path));
        AtomicFile.Write(path, s => s.WriteByte(1));
        Assert.True(File.Exists(path));
    }

    [Fact]
    public void A_file_where_a_folder_should_be_is_named()
    {
        string file = _dir.Write("f", [1]);
        var e = Assert.Throws<DirectoryNotFoundException>(() => AtomicFile.CheckTarget(Path.Combine(file, "x.png")));
        Assert.Equal($"{Path.Combine(file, "x.png")}: {file} is a file, not a folder", e.Message);
    }

}

/// <summary>
/// Runs alone: <see cref="AtomicFile.DeleteTemporaries"/> deletes every temporary of the process, so a test writing
/// a file beside it would lose its own.
/// </summary>
[Collection(nameof(AtomicFileSignalTests))]
public sealed class AtomicFileSignalTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void A_signal_handler_deletes_the_files_being_written()
    {
        using var files = new AtomicFileSet();
        Assert.Throws<InvalidOperationException>(() => files.Add(_dir.File("big.safetensors"), s =>
        {
            s.WriteByte(1);
            Assert.Single(Directory.GetFiles(_dir.Path));
            AtomicFile.DeleteTemporaries(); // what the CLI's SIGINT/SIGTERM handler runs
            Assert.Empty(Directory.GetFiles(_dir.Path));
            throw new InvalidOperationException("stop");
        }));
    }
}

[CollectionDefinition(nameof(AtomicFileSignalTests), DisableParallelization = true)]
public sealed class AtomicFileSignalCollection;
