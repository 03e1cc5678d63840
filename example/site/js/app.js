// The example script.
function greet(name) {
  const message = "Hello, " + name + "!";
  return message;
}
document.title = greet("fileconveyor");
