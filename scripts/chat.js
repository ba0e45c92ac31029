function init() {
  routeRegistry.registerStreamRoute("/chat");
  routeRegistry.registerRoute("GET", "/chat", showChatPage);
  routeRegistry.registerRoute("POST", "/chat/send", sendMessage);
  routeRegistry.registerRoute("POST", "/chat/typing", sendTypingIndicator);
}

function showChatPage(request) {
  const html = `
    <!DOCTYPE html>
    <html>
    <head>
      <title>Live Chat</title>
      <style>
        * {
          margin: 0;
          padding: 0;
          box-sizing: border-box;
        }
        body {
          font-family: 'Segoe UI', Tahoma, Geneva, Verdana, sans-serif;
          height: 100vh;
          display: flex;
          flex-direction: column;
          background: #f0f2f5;
        }
        .header {
          background: #075e54;
          color: white;
          padding: 15px 20px;
          box-shadow: 0 2px 4px rgba(0,0,0,0.1);
        }
        .header h1 {
          font-size: 1.2em;
        }
        .chat-container {
          flex: 1;
          display: flex;
          flex-direction: column;
          max-width: 1200px;
          width: 100%;
          margin: 0 auto;
          background: white;
        }
        .messages {
          flex: 1;
          overflow-y: auto;
          padding: 20px;
          background: #e5ddd5;
        }
        .message {
          margin: 10px 0;
          display: flex;
          animation: fadeIn 0.3s;
        }
        .message-content {
          max-width: 60%;
          padding: 8px 12px;
          border-radius: 8px;
          word-wrap: break-word;
        }
        .message.own {
          justify-content: flex-end;
        }
        .message.own .message-content {
          background: #dcf8c6;
        }
        .message.other .message-content {
          background: white;
        }
        .message-user {
          font-weight: bold;
          color: #075e54;
          font-size: 0.85em;
          margin-bottom: 3px;
        }
        .message-time {
          font-size: 0.75em;
          color: #667;
          margin-top: 3px;
          text-align: right;
        }
        .typing-indicator {
          padding: 10px 20px;
          font-style: italic;
          color: #666;
          min-height: 30px;
          background: #f0f2f5;
        }
        .input-area {
          display: flex;
          padding: 15px;
          background: #f0f2f5;
          border-top: 1px solid #ddd;
        }
        #username {
          width: 150px;
          padding: 10px;
          border: 1px solid #ddd;
          border-radius: 20px;
          margin-right: 10px;
        }
        #messageInput {
          flex: 1;
          padding: 10px 15px;
          border: 1px solid #ddd;
          border-radius: 20px;
          margin-right: 10px;
        }
        button {
          background: #075e54;
          color: white;
          border: none;
          padding: 10px 25px;
          border-radius: 20px;
          cursor: pointer;
          font-weight: bold;
        }
        button:hover {
          background: #064e47;
        }
        button:disabled {
          background: #ccc;
          cursor: not-allowed;
        }
        @keyframes fadeIn {
          from { opacity: 0; transform: translateY(10px); }
          to { opacity: 1; transform: translateY(0); }
        }
        .system-message {
          text-align: center;
          color: #666;
          font-size: 0.85em;
          margin: 15px 0;
          font-style: italic;
        }
      </style>
    </head>
    <body>
      <div class="header">
        <h1>üí¨ Live Chat Room</h1>
      </div>
      
      <div class="chat-container">
        <div class="messages" id="messages"></div>
        
        <div class="typing-indicator" id="typingIndicator"></div>
        
        <div class="input-area">
          <input type="text" id="username" placeholder="Your name" value="User">
          <input type="text" id="messageInput" placeholder="Type a message..." autocomplete="off">
          <button id="sendBtn">Send</button>
        </div>
      </div>
      
      <script>
        const messagesContainer = document.getElementById('messages');
        const messageInput = document.getElementById('messageInput');
        const usernameInput = document.getElementById('username');
        const sendBtn = document.getElementById('sendBtn');
        const typingIndicator = document.getElementById('typingIndicator');
        
        let typingTimeout;
        const typingUsers = new Set();
        
        // Connect to chat stream
        const eventSource = new EventSource('/chat');
        
        eventSource.onmessage = function(event) {
          const data = JSON.parse(event.data);
          
          if (data.type === 'message') {
            addMessage(data.user, data.message, data.timestamp, false);
          } else if (data.type === 'typing') {
            handleTyping(data.user, data.isTyping);
          } else if (data.type === 'system') {
            addSystemMessage(data.message);
          }
        };
        
        eventSource.onerror = function() {
          addSystemMessage('Connection lost. Reconnecting...');
        };
        
        // Send message
        function sendMessage() {
          const message = messageInput.value.trim();
          const username = usernameInput.value.trim() || 'Anonymous';
          
          if (!message) return;
          
          fetch('/chat/send', {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ user: username, message: message })
          });
          
          // Add own message immediately
          addMessage(username, message, new Date().toISOString(), true);
          
          messageInput.value = '';
          sendTypingStatus(false);
        }
        
        sendBtn.addEventListener('click', sendMessage);
        
        messageInput.addEventListener('keypress', function(e) {
          if (e.key === 'Enter') {
            sendMessage();
          }
        });
        
        // Typing indicator
        messageInput.addEventListener('input', function() {
          sendTypingStatus(true);
          
          clearTimeout(typingTimeout);
          typingTimeout = setTimeout(() => {
            sendTypingStatus(false);
          }, 1000);
        });
        
        function sendTypingStatus(isTyping) {
          const username = usernameInput.value.trim() || 'Anonymous';
          
          fetch('/chat/typing', {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ user: username, isTyping: isTyping })
          });
        }
        
        function addMessage(user, message, timestamp, isOwn) {
          const div = document.createElement('div');
          div.className = \`message \${isOwn ? 'own' : 'other'}\`;
          
          const content = document.createElement('div');
          content.className = 'message-content';
          
          if (!isOwn) {
            const userDiv = document.createElement('div');
            userDiv.className = 'message-user';
            userDiv.textContent = user;
            content.appendChild(userDiv);
          }
          
          const messageDiv = document.createElement('div');
          messageDiv.textContent = message;
          content.appendChild(messageDiv);
          
          const timeDiv = document.createElement('div');
          timeDiv.className = 'message-time';
          timeDiv.textContent = new Date(timestamp).toLocaleTimeString();
          content.appendChild(timeDiv);
          
          div.appendChild(content);
          messagesContainer.appendChild(div);
          messagesContainer.scrollTop = messagesContainer.scrollHeight;
        }
        
        function addSystemMessage(message) {
          const div = document.createElement('div');
          div.className = 'system-message';
          div.textContent = message;
          messagesContainer.appendChild(div);
          messagesContainer.scrollTop = messagesContainer.scrollHeight;
        }
        
        function handleTyping(user, isTyping) {
          if (isTyping) {
            typingUsers.add(user);
          } else {
            typingUsers.delete(user);
          }
          
          updateTypingIndicator();
        }
        
        function updateTypingIndicator() {
          if (typingUsers.size === 0) {
            typingIndicator.textContent = '';
          } else if (typingUsers.size === 1) {
            typingIndicator.textContent = \`\${Array.from(typingUsers)[0]} is typing...\`;
          } else {
            typingIndicator.textContent = \`\${typingUsers.size} people are typing...\`;
          }
        }
        
        // Welcome message
        addSystemMessage('Welcome to the chat room!');
      </script>
    </body>
    </html>
  `;

  return {
    status: 200,
    headers: { "Content-Type": "text/html" },
    body: html,
  };
}

function sendMessage(request) {
  const data = JSON.parse(request.body || "{}");

  const message = {
    type: "message",
    user: data.user || "Anonymous",
    message: data.message,
    timestamp: new Date().toISOString(),
  };

  sendStreamMessage(message);

  console.log("Chat message sent", {
    user: message.user,
    messageLength: message.message.length,
  });

  return {
    status: 200,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ success: true }),
  };
}

function sendTypingIndicator(request) {
  const data = JSON.parse(request.body || "{}");

  const typing = {
    type: "typing",
    user: data.user,
    isTyping: data.isTyping,
  };

  sendStreamMessage(typing);

  return {
    status: 200,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ success: true }),
  };
}

init();
